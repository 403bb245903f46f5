// summit-config console: optional improvements. Every page works without this script.
(() => {
  // Times: the viewer's zone in the text, UTC kept in the title (set by the server).
  const localise = (root) => {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = at.toLocaleString();
    }
  };
  // Live parts: a [data-live] element is fetched again whenever its [data-watch] stream (the
  // change events of /ui/events) says something changed.
  const follow = (el) => {
    let pending = false;
    const refresh = async () => {
      if (pending) return;
      pending = true;
      try {
        const response = await fetch(el.dataset.live, { credentials: "same-origin" });
        if (response.ok) {
          el.innerHTML = await response.text();
          localise(el);
          el.dataset.refreshed = String(Number(el.dataset.refreshed || 0) + 1);
        }
      } finally {
        pending = false;
      }
    };
    const events = new EventSource(el.dataset.watch);
    events.onmessage = refresh;
  };
  document.addEventListener("DOMContentLoaded", () => {
    localise(document);
    for (const el of document.querySelectorAll("[data-live][data-watch]")) follow(el);
  });
})();
