// A form generated from a job kind's JSON schema (pydantic): numbers, booleans, choices,
// text; fields marked x-unem-choices offer the datasets and the chosen dataset's layers.
import { api, element } from "/static/api.js";

let datasets = null;

async function allDatasets() {
  if (datasets === null) datasets = (await api("GET", "/api/datasets")).datasets;
  return datasets;
}

function resolve(schema, property) {
  const ref = property.$ref || property.allOf?.[0]?.$ref;
  if (!ref) return property;
  return { ...schema.$defs[ref.split("/").pop()], ...property };
}

function input(name, property, required) {
  const type = property.type || property.anyOf?.find((t) => t.type !== "null")?.type;
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
  } else {
    Object.assign(attributes, { type: "text", maxlength: property.maxLength });
  }
  const field = element("input", attributes);
  if (property.default !== undefined && property.default !== null) field.value = property.default;
  return field;
}

async function choices(name, property, form) {
  const list = await allDatasets();
  const select = element("select", { name, required: "" });
  if (property["x-unem-choices"] === "dataset") {
    select.append(...list.map((d) => element("option", { value: d.id }, `${d.name} (${d.id})`)));
    select.addEventListener("change", () => form.dispatchEvent(new Event("dataset")));
  } else {
    const fill = () => {
      const id = form.querySelector("[data-choices=dataset]")?.value;
      const layers = list.find((d) => d.id === id)?.layers || [];
      const keep = select.value || property.default;
      select.replaceChildren(...layers.map((l) => element("option", { value: l.name }, `${l.name} (${l.kind})`)));
      if (layers.some((l) => l.name === keep)) select.value = keep;
    };
    form.addEventListener("dataset", fill);
  }
  select.dataset.choices = property["x-unem-choices"];
  return select;
}

// `order`: the field names in the order the kind declares them.
export async function optionsForm(schema, order) {
  const form = element("div", { class: "stack" });
  const required = new Set(schema.required || []);
  const fields = [];
  for (const name of order || Object.keys(schema.properties || {})) {
    const property = resolve(schema, schema.properties[name]);
    const control = property["x-unem-choices"]
      ? await choices(name, property, form) : input(name, property, required.has(name));
    control.dataset.type = property.type || "";
    fields.push(element("label", { title: property.description || "" },
      element("span", { class: "name" }, property.title || name), control,
      element("span", { class: "hint" }, property.description || "")));
  }
  form.append(...fields);
  form.dispatchEvent(new Event("dataset")); // fill the layer choices of the first dataset
  return [form];
}

export function readOptions(container, schema) {
  const options = {};
  for (const control of container.querySelectorAll("[name]")) {
    const property = resolve(schema, schema.properties[control.name] || {});
    if (control.type === "checkbox") options[control.name] = control.checked;
    else if (control.type === "number") {
      if (control.value !== "") options[control.name] = Number(control.value);
    } else if (control.value !== "" || property.default !== undefined) {
      options[control.name] = control.value;
    }
  }
  return options;
}
