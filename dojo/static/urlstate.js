// The view in the address bar (?z=&x=&y=&zoom=&sel=): a copied link opens the same place.
// Query parameters rather than a #hash, so the view survives the login redirect.

const KEYS = ["z", "x", "y", "zoom", "sel"];

export function readViewFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const view = {};
  for (const key of KEYS) {
    const raw = params.get(key);
    if (raw === null || raw === "") continue;
    const value = Number(raw);
    if (Number.isFinite(value)) view[key] = value;
  }
  return view;
}

let timer = null;

/** Write the view into the URL, at most a few times a second (history.replaceState). */
export function writeViewToUrl(camera, selected) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    const params = new URLSearchParams(window.location.search);
    params.set("z", String(camera.z));
    params.set("x", String(Math.round(camera.x)));
    params.set("y", String(Math.round(camera.y)));
    params.set("zoom", String(Number(camera.zoom.toPrecision(3))));
    if (selected) params.set("sel", String(selected));
    else params.delete("sel");
    const url = `${window.location.pathname}?${params}`;
    if (url !== `${window.location.pathname}${window.location.search}`) {
      window.history.replaceState(null, "", url);
    }
  }, 200);
}
