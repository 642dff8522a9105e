// Sign-up forms (app/form_endpoints.py): their shape and the HTML to embed one on a site.

export type FormField = { key: string; label: string; type: "email" | "text" | "checkbox"; required: boolean };
export type Form = {
  _id: string;
  name: string;
  listId?: string;
  fields: FormField[];
  redirectUrl?: string;
  honeypotFieldName: string;
  isActive: boolean;
  doubleOptIn: boolean;
  submissionCount: number;
  successfulSubmissionCount: number;
};

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** A plain HTML form that posts to the form's public endpoint (`POST /forms/<id>` on this
 * site), with its fields and the hidden honeypot field bots fill in. */
export function embedSnippet(form: Form, origin: string): string {
  const inputs = form.fields.map((field) => {
    const required = field.required ? " required" : "";
    const name = escape(field.key);
    if (field.type === "checkbox") {
      return `  <label><input type="checkbox" name="${name}" value="true"${required}> ${escape(field.label)}</label>`;
    }
    return `  <label>${escape(field.label)} <input type="${field.type}" name="${name}"${required}></label>`;
  });
  return [
    `<form action="${escape(origin)}/forms/${form._id}" method="post">`,
    ...inputs,
    `  <input type="text" name="${escape(form.honeypotFieldName)}" tabindex="-1" autocomplete="off" style="display:none" aria-hidden="true">`,
    `  <button type="submit">Subscribe</button>`,
    `</form>`,
  ].join("\n");
}
