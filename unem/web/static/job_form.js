// A form generated from a JSON schema (pydantic): numbers (bounds → min/max), booleans,
// choices, text, lists, JSON objects, and nested option groups (collapsible). Fields marked
// x-unem-choices offer the datasets, the chosen dataset's layers, the registered models or
// the trained models, FFN preparations and FFN models. Used by the jobs page, the trainer and
// the FFN page.
import { api, element } from "/static/api.js";

// x-unem-choices → where the choices come from, and how each is shown.
const CHOICES = {
  dataset: { path: "/api/datasets", key: "datasets", value: (d) => d.id, text: (d) => `${d.name} (${d.id})` },
  model: { path: "/api/models", key: "models", value: (m) => m.name, text: (m) => `${m.title} (${m.name})` },
  "trained-model": {
    path: "/api/trained-models", key: "models", value: (m) => m.name,
    text: (m) => (m.model ? `${m.name} (${m.model})` : m.name),
  },
  "ffn-preparation": {
    path: "/api/ffn/preparations", key: "preparations", value: (p) => p.name,
    text: (p) => `${p.name} (${p.dataset}/${p.label_layer}, ${p.preset})`,
  },
  "ffn-model": {
    path: "/api/ffn/models", key: "models", value: (m) => m.name,
    text: (m) => `${m.name} (${m.preset || "ffn"}, ${m.steps ?? "?"} steps)`,
  },
};
const loaded = new Map(); // choice kind → promise of the list
const fillers = new WeakMap(); // select → function refilling it

function load(kind) {
  if (!loaded.has(kind)) {
    const { path, key } = CHOICES[kind];
    const list = api("GET", path).then((data) => data[key]);
    list.catch(() => loaded.delete(kind)); // fetched again next time
    loaded.set(kind, list);
  }
  return loaded.get(kind);
}

function resolve(schema, property) {
  const ref = property.$ref || property.allOf?.[0]?.$ref;
  if (!ref) return property;
  return { ...schema.$defs[ref.split("/").pop()], ...property };
}

// A nullable field (`int | None`) reads as its non-null branch, with the field's own keys.
function typed(property) {
  const branch = property.anyOf?.find((t) => t.type !== "null");
  return branch ? { ...branch, ...property, type: branch.type } : property;
}

function isGroup(property) {
  return property.type === "object" && property.properties !== undefined;
}

function input(name, property, required) {
  const { type } = property;
  if (property.enum) {
    const select = element("select", { name }, ...property.enum.map((v) => element("option", { value: v }, v)));
    if (property.default !== undefined) select.value = property.default;
    return select;
  }
  if (type === "boolean") {
    return element("input", { type: "checkbox", name, ...(property.default ? { checked: "" } : {}) });
  }
  const attributes = { name, required: required ? "" : null };
  if (type === "integer" || type === "number") {
    Object.assign(attributes, {
      type: "number", step: type === "integer" ? 1 : "any",
      min: property.minimum ?? property.exclusiveMinimum, max: property.maximum ?? property.exclusiveMaximum,
    });
  } else if (type === "array") {
    Object.assign(attributes, { type: "text", placeholder: "comma-separated, e.g. 1, 2.5" });
  } else if (type === "object") {
    Object.assign(attributes, { type: "text", placeholder: 'JSON, e.g. {"name": 1}' });
  } else {
    Object.assign(attributes, { type: "text", maxlength: property.maxLength });
  }
  const field = element("input", attributes);
  const value = property.default;
  if (value !== undefined && value !== null) {
    field.value = type === "object" ? JSON.stringify(value) : Array.isArray(value) ? value.join(", ") : value;
  }
  return field;
}

function choices(name, property, form) {
  const kind = property["x-unem-choices"];
  const select = element("select", { name, required: "" });
  select.dataset.choices = kind;
  if (kind === "layer") {
    // The layers of the dataset chosen in the same form.
    const fill = async () => {
      const id = form.querySelector("[data-choices=dataset]")?.value;
      const layers = (await load("dataset")).find((d) => d.id === id)?.layers || [];
      const keep = select.value || property.default;
      select.replaceChildren(...layers.map((l) => element("option", { value: l.name }, `${l.name} (${l.kind})`)));
      if (layers.some((l) => l.name === keep)) select.value = keep;
    };
    form.addEventListener("dataset", fill);
    fillers.set(select, fill);
    return select;
  }
  const source = CHOICES[kind];
  const fill = async () => {
    const list = await load(kind);
    const keep = select.value || property.default;
    select.replaceChildren(...list.map((item) => element("option", { value: source.value(item) }, source.text(item))));
    if (list.some((item) => source.value(item) === keep)) select.value = keep;
    if (kind === "dataset") form.dispatchEvent(new Event("dataset"));
  };
  if (kind === "dataset") select.addEventListener("change", () => form.dispatchEvent(new Event("dataset")));
  fillers.set(select, fill);
  return select;
}

function field(name, property, required, form) {
  const control = property["x-unem-choices"] ? choices(name, property, form) : input(name, property, required);
  control.dataset.type = property.type || "";
  return element("label", { title: property.description || "" },
    element("span", { class: "name" }, property.title || name), control,
    element("span", { class: "hint" }, property.description || ""));
}

function fields(schema, object, prefix, form, skip) {
  const required = new Set(object.required || []);
  const names = Object.keys(object.properties || {}).filter((name) => !skip.has(prefix + name));
  return names.map((name) => {
    const property = typed(resolve(schema, object.properties[name]));
    if (!isGroup(property)) return field(prefix + name, property, required.has(name), form);
    return element("details", { class: "group", dataset: { group: prefix + name } },
      element("summary", {}, property.title || name),
      property.description ? element("p", { class: "hint" }, property.description) : null,
      element("div", { class: "stack" }, ...fields(schema, property, `${prefix}${name}.`, form, skip)));
  });
}

// `order`: the field names in the order the kind declares them; `skip`: names (dotted for
// nested groups) the caller fills itself. Resolves once every choice list is filled.
export async function optionsForm(schema, order, { skip = [] } = {}) {
  const form = element("div", { class: "stack" });
  const ordered = { ...schema, properties: {} };
  for (const name of order || Object.keys(schema.properties || {})) {
    ordered.properties[name] = schema.properties[name];
  }
  form.append(...fields(schema, ordered, "", form, new Set(skip)));
  await refreshChoices(form);
  return [form];
}

// Fetch the choice lists again (e.g. a model was trained) and refill the selects of
// `container` whose choices are of `kind` (all of them without a kind), keeping their values.
export async function refreshChoices(container, kind) {
  if (kind) loaded.delete(kind);
  const selects = [...container.querySelectorAll("select[data-choices]")]
    .filter((s) => !kind || s.dataset.choices === kind)
    .sort((a, b) => (a.dataset.choices === "layer") - (b.dataset.choices === "layer"));
  for (const select of selects) await fillers.get(select)?.();
}

function propertyAt(schema, path) {
  let object = schema;
  let property = {};
  for (const name of path) {
    property = typed(resolve(schema, object.properties?.[name] || {}));
    object = property;
  }
  return property;
}

function value(control, property) {
  const { type } = property;
  if (control.type === "checkbox") return control.checked;
  if (control.value === "") return property.default !== undefined && type === "string" ? "" : undefined;
  if (type === "integer" || type === "number") return Number(control.value);
  if (type === "array") {
    const items = control.value.split(",").map((v) => v.trim()).filter((v) => v !== "");
    const numeric = ["integer", "number"].includes(property.items?.type);
    return numeric ? items.map(Number) : items;
  }
  if (type === "object") {
    try {
      return JSON.parse(control.value);
    } catch {
      throw new Error(`${property.title || control.name}: not valid JSON.`);
    }
  }
  return control.value;
}

// The options the form's controls hold, nested groups as objects; empty fields are left
// out so that the schema's defaults apply.
export function readOptions(container, schema) {
  const options = {};
  for (const control of container.querySelectorAll("[name]")) {
    const path = control.name.split(".");
    const read = value(control, propertyAt(schema, path));
    if (read === undefined) continue;
    let target = options;
    for (const name of path.slice(0, -1)) target = target[name] ??= {};
    target[path.at(-1)] = read;
  }
  return options;
}
