// The privacy centre: the resident's consents and disclosures, through /graphql as any client.
// Everything shown is set as text (textContent), never parsed as markup.
"use strict";

(() => {
  const TOKEN_KEY = "citygate.privacy.token";
  // Fides data categories a resident is most often asked about; the control plane refuses any other name
  const CATEGORIES = [
    ["user.contact", "your contact details (all of them)"],
    ["user.contact.email", "your email address"],
    ["user.contact.phone_number", "your phone number"],
    ["user.contact.address", "your postal address"],
    ["user.name", "your name"],
    ["user.unique_id", "your identifiers"],
    ["user.location", "where you are or were"],
    ["user.behavior", "what you did (bookings, rides)"],
    ["user.financial", "what you paid"],
    ["user.government_id.vehicle_registration", "your vehicle registration"],
    ["user.social", "your neighbourhood activity"],
  ];
  const CENTRE = `query PrivacyCentre {
    me {
      residentId
      consents { id recipient purpose categories legalBasis grantedAt expiresAt withdrawnAt active }
      disclosures(limit: 200) { at requestId recipient purpose fields basis }
    }
    clients { id name purposes { id description } }
  }`;
  const GRANT = `mutation Grant($recipient: String!, $purpose: String!, $categories: [String!]!, $days: Int) {
    grantConsent(recipient: $recipient, purpose: $purpose, categories: $categories, expiresInDays: $days) { consent { id } }
  }`;
  const WITHDRAW = `mutation Withdraw($id: ID!) { withdrawConsent(consentId: $id) { id withdrawnAt } }`;
  const RECEIPTS = `query Receipts { me { consents { id signedReceipt } } }`;
  const EXPORT = `query Export { me { export } }`;
  const ERASURES = `query Erasures { me { erasureRequests { id requestedAt deliveries { connector owner status reason attempts } } } }`;
  const REQUEST_ERASURE = `mutation RequestErasure { requestErasure { id } }`;
  const ERASURE_REASONS = {
    "no-endpoint": "this service takes no erasure requests through the city (ask it directly)",
    rejected: "the service refused the request",
    "http-error": "the service kept failing",
    timeout: "the service did not answer in time",
    unreachable: "the service could not be reached",
    "invalid-response": "the service's answer could not be understood",
    "address-refused": "the service's address is not allowed",
    "endpoint-refused": "the service's erasure address is not allowed",
    "connector-removed": "the service has left the city's graph",
    "owner-changed": "the service's name now belongs to another company: nothing was sent to it",
    "no-confirmation": "the service never confirmed",
    "signing-unavailable": "the city could not sign the request yet",
    // retained: the law makes the city keep these records (GDPR art. 17(3))
    "legal-obligation": "kept: the city must keep these records by law (GDPR art. 17(3)(b))",
    "public-task": "kept: needed for a task in the public interest (GDPR art. 17(3)(b))",
    "public-health": "kept: needed for public health (GDPR art. 17(3)(c))",
    archiving: "kept: archived in the public interest (GDPR art. 17(3)(d))",
    "legal-claims": "kept: needed for legal claims (GDPR art. 17(3)(e))",
  };

  const $ = (id) => document.getElementById(id);
  let clients = [];

  function say(text, isError = false) {
    const message = $("message");
    message.textContent = text;
    message.className = isError ? "error" : "";
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text ?? "";
    row.appendChild(td);
    return td;
  }

  function when(iso) {
    if (!iso) return "";
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
  }

  function clientName(id) {
    const client = clients.find((c) => c.id === id);
    return client ? `${client.name} (${id})` : id;
  }

  async function graphql(query, variables = {}) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`the gateway answered ${response.status}`);
    }
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      const code = (first.extensions && first.extensions.code) || response.status;
      throw new Error(`${first.message} (${code})`);
    }
    return body.data;
  }

  function showSignedIn(signedIn) {
    $("centre").hidden = !signedIn;
    $("sign-in").hidden = signedIn;
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignedIn(false);
  }

  function renderConsents(consents) {
    const body = $("consents").querySelector("tbody");
    body.replaceChildren();
    $("no-consents").hidden = consents.length > 0;
    const byNewest = [...consents].sort((a, b) => (a.grantedAt < b.grantedAt ? 1 : -1));
    for (const consent of byNewest) {
      const row = document.createElement("tr");
      row.dataset.consentId = consent.id;
      row.dataset.recipient = consent.recipient;
      row.dataset.purpose = consent.purpose;
      const status = consent.active ? "active" : consent.withdrawnAt ? "withdrawn" : "expired";
      row.dataset.status = status;
      cell(row, clientName(consent.recipient));
      cell(row, consent.purpose);
      cell(row, consent.categories.join(", "));
      cell(row, consent.legalBasis);
      cell(row, when(consent.grantedAt));
      cell(row, consent.expiresAt ? when(consent.expiresAt) : "until withdrawn");
      cell(row, status === "withdrawn" ? `withdrawn ${when(consent.withdrawnAt)}` : status);
      const actions = cell(row, "");
      if (consent.active) {
        const withdraw = document.createElement("button");
        withdraw.type = "button";
        withdraw.className = "withdraw";
        withdraw.textContent = "Withdraw";
        withdraw.addEventListener("click", () => withdrawConsent(consent.id));
        actions.appendChild(withdraw);
      }
      const receipt = document.createElement("button");
      receipt.type = "button";
      receipt.className = "receipt";
      receipt.textContent = "Signed receipt";
      receipt.addEventListener("click", () => downloadReceipt(consent.id));
      actions.appendChild(receipt);
      body.appendChild(row);
    }
  }

  function basisText(basis, consents) {
    if (basis.startsWith("consent:")) {
      const consent = consents.find((c) => c.id === basis.slice("consent:".length));
      return consent ? `your consent (${consent.purpose})` : "your consent";
    }
    if (basis.startsWith("policy:")) return `the city's rule ${basis.slice("policy:".length)}`;
    return basis;
  }

  function renderDisclosures(disclosures, consents) {
    const body = $("disclosures").querySelector("tbody");
    body.replaceChildren();
    $("no-disclosures").hidden = disclosures.length > 0;
    for (const disclosure of disclosures) {
      const row = document.createElement("tr");
      row.dataset.requestId = disclosure.requestId;
      row.dataset.recipient = disclosure.recipient;
      cell(row, when(disclosure.at));
      cell(row, clientName(disclosure.recipient));
      cell(row, disclosure.purpose);
      cell(row, disclosure.fields.join(", "));
      const basis = cell(row, disclosure.basis.map((b) => basisText(b, consents)).join("; "));
      basis.title = disclosure.basis.join(", ");
      body.appendChild(row);
    }
  }

  function renderGrantForm() {
    const clientSelect = $("grant-client");
    const chosen = clientSelect.value;
    clientSelect.replaceChildren();
    for (const client of clients.filter((c) => c.purposes.length)) {
      const option = document.createElement("option");
      option.value = client.id;
      option.textContent = `${client.name} (${client.id})`;
      clientSelect.appendChild(option);
    }
    if (chosen) clientSelect.value = chosen;
    renderPurposes();
    const fieldset = $("grant-categories");
    if (!fieldset.querySelector("input")) {
      for (const [category, label] of CATEGORIES) {
        const line = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = category;
        box.name = "category";
        line.appendChild(box);
        line.appendChild(document.createTextNode(` ${label} (${category})`));
        fieldset.appendChild(line);
      }
    }
  }

  function renderPurposes() {
    const client = clients.find((c) => c.id === $("grant-client").value);
    const purposeSelect = $("grant-purpose");
    purposeSelect.replaceChildren();
    for (const purpose of client ? client.purposes : []) {
      const option = document.createElement("option");
      option.value = purpose.id;
      option.textContent = purpose.description ? `${purpose.description} (${purpose.id})` : purpose.id;
      purposeSelect.appendChild(option);
    }
  }

  async function load() {
    const data = await graphql(CENTRE);
    if (!data.me) {
      signOut();
      say("This token is not a resident's: sign in as a resident.", true);
      return;
    }
    clients = data.clients;
    $("resident-id").textContent = data.me.residentId;
    renderConsents(data.me.consents);
    renderDisclosures(data.me.disclosures, data.me.consents);
    renderGrantForm();
    await loadErasures();
    showSignedIn(true);
  }

  function renderErasures(requests) {
    const body = $("erasures").querySelector("tbody");
    body.replaceChildren();
    $("no-erasures").hidden = requests.length > 0;
    for (const request of requests) {
      for (const delivery of request.deliveries) {
        const row = document.createElement("tr");
        row.dataset.requestId = request.id;
        row.dataset.connector = delivery.connector;
        row.dataset.status = delivery.status;
        cell(row, when(request.requestedAt));
        cell(row, `${delivery.owner} (${delivery.connector})`);
        cell(row, delivery.status);
        cell(row, delivery.reason ? ERASURE_REASONS[delivery.reason] || delivery.reason : "");
        cell(row, String(delivery.attempts));
        body.appendChild(row);
      }
    }
    // while a partner has not answered, look again shortly
    clearTimeout(renderErasures.timer);
    if (requests.some((r) => r.deliveries.some((d) => d.status === "pending"))) {
      renderErasures.timer = setTimeout(() => act("Refreshing erasure requests", loadErasures), 2000);
    }
  }

  async function loadErasures() {
    const data = await graphql(ERASURES);
    if (data.me) renderErasures(data.me.erasureRequests);
  }

  async function downloadExport() {
    await act("Gathering your data", async () => {
      say("Gathering your data from every service...");
      const data = await graphql(EXPORT);
      const link = document.createElement("a");
      const json = JSON.stringify(data.me.export, null, 2);
      link.href = URL.createObjectURL(new Blob([json], { type: "application/json" }));
      link.download = `my-data-${data.me.export.subject}.json`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      say("Your data is downloaded.");
      await load();
    });
  }

  async function requestErasure() {
    if (!window.confirm("Ask the city and every partner to erase your data? This cannot be undone.")) return;
    await act("Requesting erasure", async () => {
      await graphql(REQUEST_ERASURE);
      say("Erasure requested: each service's answer shows below.");
      await load();
    });
  }

  async function act(what, action) {
    try {
      await action();
    } catch (error) {
      say(`${what}: ${error.message}`, true);
    }
  }

  async function withdrawConsent(id) {
    await act("Withdrawing", async () => {
      await graphql(WITHDRAW, { id });
      say("Consent withdrawn: from the next request on, nobody receives your data under it.");
      await load();
    });
  }

  async function grantConsent() {
    await act("Giving the consent", async () => {
      const categories = [...$("grant-categories").querySelectorAll("input:checked")].map((box) => box.value);
      if (!categories.length) throw new Error("choose which data");
      const days = Number.parseInt($("grant-days").value, 10);
      await graphql(GRANT, {
        recipient: $("grant-client").value,
        purpose: $("grant-purpose").value,
        categories,
        days: Number.isNaN(days) ? null : days,
      });
      for (const box of $("grant-categories").querySelectorAll("input:checked")) box.checked = false;
      say("Consent given.");
      await load();
    });
  }

  async function downloadReceipt(id) {
    await act("Fetching the receipt", async () => {
      const data = await graphql(RECEIPTS);
      const consent = data.me.consents.find((c) => c.id === id);
      if (!consent || !consent.signedReceipt) throw new Error("no signed receipt for this consent");
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([consent.signedReceipt], { type: "application/jose" }));
      link.download = `consent-receipt-${id}.jws`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    });
  }

  async function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    say("");
    await act("Signing in", load);
  }

  async function offerDemoSignIn() {
    let residents;
    try {
      const response = await fetch("/demo/sign-in", { headers: { accept: "application/json" } });
      if (!response.ok) return; // not the demo
      residents = (await response.json()).residents;
    } catch {
      return;
    }
    const list = $("demo-residents");
    for (const resident of residents) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.resident = resident;
      button.textContent = `Sign in as ${resident}`;
      button.addEventListener("click", () =>
        act("Signing in", async () => {
          const response = await fetch("/demo/sign-in", {
            method: "POST",
            headers: { "content-type": "application/json", accept: "application/json" },
            body: JSON.stringify({ resident }),
          });
          if (!response.ok) throw new Error(`the demo's sign-in answered ${response.status}`);
          await signIn((await response.json()).token);
        }),
      );
      list.appendChild(button);
    }
    $("demo-sign-in").hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("use-token").addEventListener("click", () => signIn($("token").value));
    $("sign-out").addEventListener("click", signOut);
    $("refresh").addEventListener("click", () => act("Refreshing", load));
    $("grant").addEventListener("click", grantConsent);
    $("grant-client").addEventListener("change", renderPurposes);
    $("export").addEventListener("click", downloadExport);
    $("request-erasure").addEventListener("click", requestErasure);
    offerDemoSignIn();
    if (sessionStorage.getItem(TOKEN_KEY)) act("Signing in", load);
  });
})();
