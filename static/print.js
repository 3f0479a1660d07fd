// A Print button only where printing works: not where the browser has no print(), and not inside
// a frame, whose embedding page may forbid dialogs (the embed snippet's sandbox does). Elsewhere
// the page keeps saying how to print or save the code by hand.
if (typeof window.print === "function" && window.self === window.top) {
  for (const button of document.querySelectorAll("[data-print]")) {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  }
  const help = document.getElementById("print-help");
  if (help) help.hidden = true;
}
