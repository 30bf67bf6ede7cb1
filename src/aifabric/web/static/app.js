// aifabric ui: fill the form from the examples, submit a job, poll a running job.
"use strict";

function formSetup() {
  const data = JSON.parse(document.getElementById("form-data").textContent);
  const command = document.getElementById("command");
  const example = document.getElementById("example");
  const text = document.getElementById("scenario");
  const error = document.getElementById("error");

  function showFields() {
    document.querySelectorAll("fieldset[data-command]").forEach((fs) => {
      fs.hidden = fs.dataset.command !== command.value;
    });
  }
  function fillExamples() {
    example.innerHTML = "";
    const builtin = document.createElement("option");
    builtin.value = "";
    builtin.textContent = "a small built-in scenario";
    example.appendChild(builtin);
    Object.keys(data.examples[command.value] || {}).forEach((name) => {
      const opt = document.createElement("option");
      opt.value = name;
      opt.textContent = "examples: " + name;
      example.appendChild(opt);
    });
    fillText();
  }
  function fillText() {
    const name = example.value;
    text.value = name
      ? data.examples[command.value][name]
      : JSON.stringify(data.defaults[command.value] || {}, null, 2);
  }
  command.addEventListener("change", () => { showFields(); fillExamples(); });
  example.addEventListener("change", fillText);
  showFields();
  fillExamples();

  document.getElementById("run").addEventListener("click", async () => {
    error.textContent = "";
    const overrides = {};
    document.querySelectorAll("fieldset:not([hidden]) [data-key]").forEach((el) => {
      if (el.value === "") return;
      if (el.type === "number") {
        if (!el.checkValidity()) { error.textContent = el.dataset.key + ": " + el.validationMessage; return; }
        overrides[el.dataset.key] = Number(el.value);
      } else {
        overrides[el.dataset.key] = el.value;
      }
    });
    if (error.textContent) return;
    const response = await fetch("/api/v1/jobs", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({command: command.value, scenario_yaml: text.value, overrides}),
    });
    const body = await response.json();
    if (response.status !== 202) { error.textContent = body.error; return; }
    window.location.href = "/jobs/" + body.id;
  });
}

function jobSetup() {
  const status = document.getElementById("status");
  if (status.dataset.ended === "true") return;
  const elapsed = document.getElementById("elapsed");
  async function poll() {
    const response = await fetch("/api/v1/jobs/" + status.dataset.job);
    const job = await response.json();
    status.textContent = job.status;
    const pct = job.progress.fraction === null ? "" : ", " + (100 * job.progress.fraction).toFixed(0) + " %";
    elapsed.textContent = "(" + job.progress.elapsed_s.toFixed(1) + " s" + pct + ")";
    if (["done", "failed", "cancelled"].includes(job.status)) {
      window.location.reload();
    } else {
      setTimeout(poll, 300);
    }
  }
  poll();
}

if (document.getElementById("run-form")) formSetup();
if (document.getElementById("status")) jobSetup();
