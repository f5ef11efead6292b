// Small page helpers: toasts, and a question dialog that replaces window.prompt/confirm.

const $ = (id) => document.getElementById(id);

export function toast(message, kind = "info", seconds = kind === "error" ? 7 : 3.5) {
  const box = $("toasts");
  const note = document.createElement("div");
  note.className = `toast ${kind}`;
  note.setAttribute("role", kind === "error" ? "alert" : "status");
  note.textContent = message;
  box.append(note);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(() => note.remove(), seconds * 1000);
  return note;
}

/**
 * Ask a question in the page's dialog. With `input`, resolves to the text typed (or null when
 * cancelled); without, resolves to true/false.
 */
export function ask({ title, text = "", input = false, value = "", ok = "OK" }) {
  const dialog = $("ask-dialog");
  const field = $("ask-input");
  $("ask-title").textContent = title;
  $("ask-text").textContent = text;
  $("ask-ok").textContent = ok;
  field.hidden = !input;
  field.value = value;
  return new Promise((resolve) => {
    const finish = (answer) => {
      dialog.removeEventListener("close", onClose);
      $("ask-cancel").removeEventListener("click", onCancel);
      field.removeEventListener("keydown", onKey);
      resolve(answer);
    };
    const onClose = () => {
      const confirmed = dialog.returnValue === "ok";
      finish(input ? (confirmed ? field.value : null) : confirmed);
    };
    const onCancel = () => dialog.close("cancel");
    const onKey = (event) => {
      event.stopPropagation();
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        dialog.close("ok");
      }
    };
    dialog.addEventListener("close", onClose);
    $("ask-cancel").addEventListener("click", onCancel);
    field.addEventListener("keydown", onKey);
    dialog.returnValue = "";
    dialog.showModal();
    if (input) field.focus();
    else $("ask-ok").focus();
  });
}
