// Every shortcut, declared once: the key handler, the help panel and the tooltips read it.
// `keys` are key combos as `comboOf(event)` spells them; `show` is how the help writes them.

export const SHORTCUTS = [
  { group: "Tools", command: "tool:navigate", keys: ["V"], text: "Navigate: drag to pan, click a segment to select it" },
  { group: "Tools", command: "tool:merge", keys: ["1"], text: "Merge: click a segment, then click each segment to merge into it" },
  { group: "Tools", command: "tool:split", keys: ["2"], text: "Split: draw a line across a segment, then accept the preview" },
  { group: "Tools", command: "tool:cut", keys: ["3"], text: "3D cut: click seeds A, Shift+click seeds B (on several slices), Enter to preview" },
  { group: "Tools", command: "tool:paint", keys: ["4", "B"], text: "Paint with the paint id" },
  { group: "Tools", command: "tool:erase", keys: ["5"], text: "Erase (paint background)" },
  { group: "Tools", command: "tool:fill", keys: ["6"], text: "Fill the clicked region in 2D; Shift+click fills in 3D (± depth)" },
  { group: "Editing", command: "merge-click", keys: [], show: ["Shift+click"], text: "Merge the clicked segment into the selected one (any tool but paint)" },
  { group: "Editing", command: "pick", keys: ["I"], show: ["I", "Alt+click"], text: "Pick the segment under the cursor as paint id" },
  { group: "Editing", command: "new-id", keys: ["N"], text: "Ask the server for a new segment id to paint with" },
  { group: "Editing", command: "brush-smaller", keys: ["["], text: "Smaller brush (screen pixels, any zoom)" },
  { group: "Editing", command: "brush-larger", keys: ["]"], text: "Larger brush" },
  { group: "Editing", command: "accept", keys: ["Enter"], text: "Preview / accept a split" },
  { group: "Editing", command: "cancel", keys: ["Escape"], show: ["Esc"], text: "Cancel the split, the seeds or the selection" },
  { group: "Editing", command: "lock", keys: ["L"], text: "Lock or unlock the segment under the cursor (or the selected one)" },
  { group: "Editing", command: "mark", keys: ["M"], text: "Add a problem mark with a note at the cursor" },
  { group: "Editing", command: "undo", keys: ["Ctrl+Z"], text: "Undo your last edit" },
  { group: "Editing", command: "redo", keys: ["Ctrl+Shift+Z", "Ctrl+Y"], text: "Redo" },
  { group: "Slices", command: "z-prev", keys: ["W", "ArrowUp", "PageUp"], show: ["W", "↑", "PgUp"], text: "Previous slice (z − 1)" },
  { group: "Slices", command: "z-next", keys: ["S", "ArrowDown", "PageDown"], show: ["S", "↓", "PgDn"], text: "Next slice (z + 1)" },
  { group: "Slices", command: "z-prev-10", keys: ["Shift+W", "Shift+ArrowUp", "Shift+PageUp"], show: ["Shift+W"], text: "10 slices back" },
  { group: "Slices", command: "z-next-10", keys: ["Shift+S", "Shift+ArrowDown", "Shift+PageDown"], show: ["Shift+S"], text: "10 slices forward" },
  { group: "View", command: "zoom-in", keys: ["C", "+", "="], show: ["C", "+"], text: "Zoom in (or the wheel, around the cursor)" },
  { group: "View", command: "zoom-out", keys: ["X", "-"], show: ["X", "−"], text: "Zoom out" },
  { group: "View", command: "fit", keys: ["F"], text: "Fit the slice in the window" },
  { group: "View", command: "pan", keys: [], show: ["Space+drag", "Right-drag"], text: "Pan with any tool" },
  { group: "View", command: "toggle-segmentation", keys: ["Q"], text: "Show or hide the segmentation" },
  { group: "View", command: "toggle-outline", keys: ["A"], text: "Outlines only" },
  { group: "View", command: "toggle-overlay", keys: ["O"], text: "Show or hide the layer overlay (a prediction, ground truth…)" },
  { group: "View", command: "opacity-up", keys: ["E"], text: "More opaque segmentation" },
  { group: "View", command: "opacity-down", keys: ["D"], text: "More transparent segmentation" },
  { group: "View", command: "jump", keys: ["J"], text: "Go to x, y, z" },
  { group: "View", command: "search", keys: ["/"], text: "Search the segment table" },
  { group: "View", command: "help", keys: ["?"], text: "This help" },
];

const SHIFTED_SYMBOLS = new Set(["?", "+", "{", "}", ":", "\"", "<", ">", "_", "|", "~", "!", "@", "#", "$", "%", "^", "&", "*", "(", ")"]);

/** The combo an event spells, e.g. "Ctrl+Shift+Z", "Shift+W", "?", "ArrowUp". */
export function comboOf(event) {
  let key = event.key;
  if (key === " ") key = "Space";
  if (key.length === 1) key = key.toUpperCase();
  const parts = [];
  if (event.ctrlKey || event.metaKey) parts.push("Ctrl");
  if (event.altKey) parts.push("Alt");
  if (event.shiftKey && !SHIFTED_SYMBOLS.has(key)) parts.push("Shift");
  parts.push(key);
  return parts.join("+");
}

const BY_COMBO = new Map(SHORTCUTS.flatMap((s) => s.keys.map((k) => [k, s.command])));

export function commandFor(event) {
  return BY_COMBO.get(comboOf(event));
}

/** The shortcut text of a command, for tooltips: "Merge (1)". */
export function shortcutLabel(command) {
  const entry = SHORTCUTS.find((s) => s.command === command);
  if (!entry) return "";
  return (entry.show || entry.keys).join(" / ");
}

export function describe(command) {
  return SHORTCUTS.find((s) => s.command === command)?.text || "";
}

/** Fill the help dialog from the table. */
export function renderHelp(container) {
  const groups = new Map();
  for (const entry of SHORTCUTS) {
    if (!groups.has(entry.group)) groups.set(entry.group, []);
    groups.get(entry.group).push(entry);
  }
  container.replaceChildren();
  for (const [name, entries] of groups) {
    const section = document.createElement("section");
    const title = document.createElement("h3");
    title.textContent = name;
    const list = document.createElement("dl");
    for (const entry of entries) {
      const dt = document.createElement("dt");
      for (const key of entry.show || entry.keys) {
        const kbd = document.createElement("kbd");
        kbd.textContent = key;
        dt.append(kbd);
      }
      const dd = document.createElement("dd");
      dd.textContent = entry.text;
      list.append(dt, dd);
    }
    section.append(title, list);
    container.append(section);
  }
}
