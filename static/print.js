// Progressive enhancement: a Print button where scripts run; the page says Ctrl+P otherwise.
for (const button of document.querySelectorAll("[data-print]")) {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
}
