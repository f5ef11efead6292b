// Label tiles coloured in the browser: fragment ids → segment (through the mapping) → colour.
// Each tile keeps its unique fragment ids and an index per pixel into them, so recolouring
// after a merge is a palette lookup per pixel, never a new request.

/** Decode raw little-endian ids into {ids, unique, index}. */
export function decodeLabels(buffer, dtype, width, height) {
  const count = width * height;
  let ids;
  if (dtype === "uint64") {
    const words = new Uint32Array(buffer, 0, count * 2);
    ids = new Float64Array(count);
    for (let i = 0; i < count; i += 1) ids[i] = words[2 * i] + words[2 * i + 1] * 4294967296;
  } else {
    ids = new Uint32Array(buffer, 0, count);
  }
  const index = new Uint32Array(count);
  const seen = new Map();
  const unique = [];
  let previous = -1;
  let previousIndex = 0;
  for (let i = 0; i < count; i += 1) {
    const id = ids[i];
    if (id !== previous) {
      let k = seen.get(id);
      if (k === undefined) {
        k = unique.length;
        unique.push(id);
        seen.set(id, k);
      }
      previous = id;
      previousIndex = k;
    }
    index[i] = previousIndex;
  }
  return { ids, unique, index, width, height };
}

function mix(n) {
  // A 32-bit integer hash (murmur3's finaliser), so neighbouring ids get unrelated colours.
  let h = (n ^ (n / 4294967296)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function hsvToRgb(h, s, v) {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

const colourCache = new Map();
const chosenColours = new Map(); // segment → [r, g, b] a user chose in the 3D annotator

/** Colours users chose ({segment: "#rrggbb"}), instead of the hashed ones; replaces all. */
export function setChosenColours(colours) {
  chosenColours.clear();
  for (const [segment, hex] of Object.entries(colours || {})) chooseColour(Number(segment), hex);
}

/** One segment's chosen colour ("#rrggbb"; null: back to its hashed colour). */
export function chooseColour(segment, hex) {
  if (hex) chosenColours.set(segment, [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  else chosenColours.delete(segment);
}

/** The colour of a segment: [r, g, b], stable across sessions and users (the one a user
 * chose in the 3D annotator if any, else a hash of its id, which the annotator shares). */
export function segmentColour(segment) {
  let colour = chosenColours.get(segment) || colourCache.get(segment);
  if (colour === undefined) {
    const h = mix(segment);
    colour = hsvToRgb((h & 0xffff) / 0x10000, 0.55 + ((h >>> 16) & 0xff) / 255 * 0.4,
      0.8 + ((h >>> 24) & 0xff) / 255 * 0.2);
    if (colourCache.size > 100000) colourCache.clear();
    colourCache.set(segment, colour);
  }
  return colour;
}

export function cssColour(segment) {
  if (!segment) return "transparent";
  const [r, g, b] = segmentColour(segment);
  return `rgb(${r}, ${g}, ${b})`;
}

const PREVIEW = [255, 170, 40];

function packed(r, g, b, a) {
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0; // ImageData is RGBA: little-endian ABGR
}

/**
 * Colour a decoded tile into `out` (a Uint32Array view of ImageData).
 * style: {segmentOf, opacity, outline, selected, previewFragments (Set)}.
 */
export function colourTile(tile, style, out) {
  const { unique, index, width, height } = tile;
  const n = unique.length;
  const segs = new Float64Array(n);
  const fill = new Uint32Array(n);
  const edge = new Uint32Array(n);
  const alpha = Math.round(style.opacity * 255);
  const edgeAlpha = Math.round(Math.max(style.opacity, 0.75) * 255);
  for (let k = 0; k < n; k += 1) {
    const segment = style.segmentOf(unique[k]);
    segs[k] = segment;
    if (segment === 0) continue;
    const previewed = style.previewFragments && style.previewFragments.has(unique[k]);
    const [r, g, b] = previewed ? PREVIEW : segmentColour(segment);
    const selected = segment === style.selected;
    const a = selected ? Math.min(255, alpha + 70) : alpha;
    fill[k] = style.outline && !selected ? 0 : packed(r, g, b, previewed ? Math.max(a, 150) : a);
    edge[k] = selected ? packed(255, 255, 255, 235) : packed(r, g, b, edgeAlpha);
  }
  const outlines = style.outline || style.selected;
  if (!outlines) {
    for (let i = 0; i < index.length; i += 1) out[i] = fill[index[i]];
    return;
  }
  for (let y = 0, i = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1, i += 1) {
      const k = index[i];
      const s = segs[k];
      let border = false;
      if (s !== 0 && (style.outline || s === style.selected)) {
        border = (x > 0 && index[i - 1] !== k && segs[index[i - 1]] !== s)
          || (x + 1 < width && index[i + 1] !== k && segs[index[i + 1]] !== s)
          || (y > 0 && index[i - width] !== k && segs[index[i - width]] !== s)
          || (y + 1 < height && index[i + width] !== k && segs[index[i + width]] !== s);
      }
      out[i] = border ? edge[k] : fill[k];
    }
  }
}
