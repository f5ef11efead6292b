// The view in the address bar (?z=&x=&y=&zoom=&sel=, and the layer overlay: &ov=&ovon=&ovo=&ovc=):
// a copied link opens the same place, showing the same layers.
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

/** The overlay as the URL has it: {layer, on, opacity, colours}, each only if present. */
export function readOverlayFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const overlay = {};
  if (params.get("ov")) overlay.layer = params.get("ov");
  if (params.has("ovon")) overlay.on = params.get("ovon") === "1";
  const opacity = Number(params.get("ovo") ?? "");
  if (params.get("ovo") && Number.isFinite(opacity)) overlay.opacity = opacity;
  if (params.get("ovc")) overlay.colours = params.get("ovc");
  return overlay;
}

let timer = null;

/** Write the view (and the overlay, if given) into the URL, at most a few times a second. */
export function writeViewToUrl(camera, selected, overlay = null) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    const params = new URLSearchParams(window.location.search);
    params.set("z", String(camera.z));
    params.set("x", String(Math.round(camera.x)));
    params.set("y", String(Math.round(camera.y)));
    params.set("zoom", String(Number(camera.zoom.toPrecision(3))));
    if (selected) params.set("sel", String(selected));
    else params.delete("sel");
    if (overlay) writeOverlay(params, overlay);
    const url = `${window.location.pathname}?${params}`;
    if (url !== `${window.location.pathname}${window.location.search}`) {
      window.history.replaceState(null, "", url);
    }
  }, 200);
}

function writeOverlay(params, overlay) {
  if (!overlay.layer) {
    for (const key of ["ov", "ovon", "ovo", "ovc"]) params.delete(key);
    return;
  }
  params.set("ov", overlay.layer);
  params.set("ovon", overlay.on ? "1" : "0");
  params.set("ovo", String(Number(overlay.opacity.toFixed(2))));
  params.set("ovc", overlay.colours);
}
