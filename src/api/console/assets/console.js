// summit-config console: optional improvements. Every page works without this script.
(() => {
  // Times: the viewer's zone in the text, UTC kept in the title (set by the server).
  const localise = (root) => {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = at.toLocaleString();
    }
  };
  // Live parts: an element with [data-watch] (a change-event stream of /ui/events) is fetched
  // again whenever the stream says something changed: from [data-live] (a fragment), or else
  // the same element (by id) of the current page fetched anew.
  const follow = (el) => {
    let pending = false;
    const refresh = async () => {
      if (pending) return;
      // Never replace a form someone is filling in: refresh when they leave it.
      if (el.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")) {
        el.addEventListener("focusout", refresh, { once: true });
        return;
      }
      pending = true;
      try {
        const source = el.dataset.live || location.href;
        const response = await fetch(source, { credentials: "same-origin" });
        if (!response.ok) return;
        const text = await response.text();
        if (el.dataset.live) {
          el.innerHTML = text;
        } else {
          const fresh = new DOMParser().parseFromString(text, "text/html").getElementById(el.id);
          if (fresh) el.innerHTML = fresh.innerHTML;
        }
        localise(el);
        el.dataset.refreshed = String(Number(el.dataset.refreshed || 0) + 1);
      } finally {
        pending = false;
      }
    };
    const events = new EventSource(el.dataset.watch);
    events.onmessage = refresh;
  };
  document.addEventListener("DOMContentLoaded", () => {
    localise(document);
    for (const el of document.querySelectorAll("[data-watch]")) follow(el);
  });
})();
