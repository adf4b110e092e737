// Runs before the page paints: apply the chosen colour theme (light, dark, or the OS's when unset).
(function () {
  "use strict";
  try {
    const theme = window.localStorage.getItem("easymemory-theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage blocked: follow the OS */ }
})();
