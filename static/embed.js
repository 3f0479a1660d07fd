// Progressive enhancement inside an iframe: tell the embedding page how tall the content is (not
// the frame, which never lets it shrink), and bring a result such as the receipt into view: the
// page that embeds the form is still scrolled to where its Send button was.
if (window.parent !== window) {
  const report = () => {
    const height = Math.ceil(document.body.getBoundingClientRect().height);
    window.parent.postMessage({ pistalka: "height", height: height }, "*");
  };
  window.addEventListener("load", () => {
    report();
    const target = document.querySelector("[data-embed-scroll]");
    if (target) target.scrollIntoView({ block: "start" });
  });
  new ResizeObserver(report).observe(document.body);
}
