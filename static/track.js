// A tracking link carries the code in the address's fragment (#CODE), which the browser never
// sends to the server. Move it into the form, take it out of the address bar and this history
// entry, and open the case with a POST. An old link's page (/track/CODE) comes with the code
// already in the field and is handled the same way.
const form = document.querySelector("form[data-open-case]");
if (form) {
  const field = form.elements.namedItem("code");
  if (location.hash.length > 1) {
    try {
      field.value = decodeURIComponent(location.hash.slice(1));
    } catch {
      field.value = location.hash.slice(1);
    }
  }
  history.replaceState(null, "", form.dataset.openCase);
  if (field.value) form.submit();
}
