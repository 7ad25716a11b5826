/* Render a form from a JSON Schema of plugin arguments (pydantic's model_json_schema). */
"use strict";

const chimpSchemaForm = (() => {
  const { el } = chimp;

  /** The non-null branch of `X | None` (anyOf: [{type: X}, {type: "null"}]). */
  function unwrap(prop) {
    if (prop.anyOf) {
      const real = prop.anyOf.filter((p) => p.type !== "null");
      if (real.length === 1) return { ...prop, ...real[0], nullable: true };
      // A float argument also accepts ints (JSON has one number type): a number input.
      const types = new Set(real.map((p) => p.type));
      if (types.size && [...types].every((t) => t === "number" || t === "integer")) {
        return { ...prop, ...Object.assign({}, ...real), type: types.has("number") ? "number" : "integer", nullable: true };
      }
    }
    return prop;
  }

  function field(name, raw, required) {
    const prop = unwrap(raw);
    const title = prop.title || name;
    const hint = prop.description ? el("span", { class: "muted" }, " — " + prop.description) : null;
    const id = "arg-" + name;
    const options = prop.enum || (prop.const !== undefined ? [prop.const] : null);
    if (prop.type === "boolean") {
      return el("label", { class: "check" },
        el("input", { type: "checkbox", id, name, checked: prop.default === true, dataset: { type: "boolean" } }),
        title, hint);
    }
    let input;
    if (options) {
      input = el("select", { id, name, dataset: { type: prop.type || "string" } },
        required ? null : el("option", { value: "" }, "(default)"),
        options.map((o) => el("option", { value: String(o), selected: o === prop.default }, String(o))));
    } else {
      const numeric = prop.type === "integer" || prop.type === "number";
      input = el("input", {
        id, name, type: numeric ? "number" : "text",
        step: prop.type === "integer" ? "1" : numeric ? "any" : undefined,
        min: prop.minimum ?? prop.exclusiveMinimum, max: prop.maximum ?? prop.exclusiveMaximum,
        value: prop.default ?? undefined,
        placeholder: required ? "required" : "optional",
        required, dataset: { type: prop.type || "string" },
      });
      if (numeric) exclusiveBounds(input, prop);
    }
    return el("label", {}, title, hint, input);
  }

  /** The browser checks min/max itself; "greater than" and "less than" need a rule of ours. */
  function exclusiveBounds(input, prop) {
    const { exclusiveMinimum: low, exclusiveMaximum: high } = prop;
    if (low === undefined && high === undefined) return;
    const check = () => {
      const value = input.value === "" ? null : Number(input.value);
      let problem = "";
      if (value !== null && low !== undefined && value <= low) problem = `must be greater than ${low}`;
      else if (value !== null && high !== undefined && value >= high) problem = `must be less than ${high}`;
      input.setCustomValidity(problem);
    };
    input.addEventListener("input", check);
    check();
  }

  /** Fill `form` with inputs for `schema`; returns a function reading typed values back. */
  function render(form, schema) {
    const props = (schema && schema.properties) || {};
    const required = new Set((schema && schema.required) || []);
    form.replaceChildren(...Object.entries(props).map(([n, p]) => field(n, p, required.has(n))));
    return () => {
      const values = {};
      for (const input of form.querySelectorAll("[data-type]")) {
        const type = input.dataset.type;
        if (type === "boolean") { values[input.name] = input.checked; continue; }
        if (input.value === "") continue; // left out: the plugin's default applies
        if (type === "integer") values[input.name] = parseInt(input.value, 10);
        else if (type === "number") values[input.name] = parseFloat(input.value);
        else values[input.name] = input.value;
      }
      return values;
    };
  }

  return { render };
})();
