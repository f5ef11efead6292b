// Users page (admin): list accounts, add one, change a role, delete one.
import { api, element } from "/static/api.js";

const body = document.querySelector("#users-table tbody");
const form = document.getElementById("add-user");
const error = document.getElementById("user-error");
let roles = [];

function showError(message) {
  error.textContent = message;
  error.hidden = !message;
}

function roleSelect(user) {
  const select = element("select", { "aria-label": `role of ${user.name}`,
    onchange: async () => {
      try {
        await api("PATCH", `/api/users/${encodeURIComponent(user.name)}`, { role: select.value });
        showError("");
      } catch (failure) {
        showError(failure.message);
        select.value = user.role;
      }
    } }, ...roles.map((r) => element("option", { value: r }, r)));
  select.value = user.role;
  return select;
}

function userRow(user) {
  const remove = element("button", { class: "link danger", onclick: async () => {
    if (!confirm(`Delete the account ${user.name}?`)) return;
    try {
      await api("DELETE", `/api/users/${encodeURIComponent(user.name)}`);
      refresh();
    } catch (failure) {
      showError(failure.message);
    }
  } }, "Delete");
  return element("tr", { dataset: { user: user.name } },
    element("td", {}, user.name), element("td", {}, roleSelect(user)), element("td", {}, remove));
}

async function refresh() {
  const data = await api("GET", "/api/users");
  roles = data.roles;
  body.replaceChildren(...data.users.map(userRow));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const values = Object.fromEntries(new FormData(form));
  try {
    await api("POST", "/api/users", values);
    form.reset();
    showError("");
    refresh();
  } catch (failure) {
    showError(failure.message);
  }
});

refresh();
