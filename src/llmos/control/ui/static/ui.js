// llmos dashboard: refresh server-rendered fragments and follow job logs. No dependencies.
"use strict";

class Refused extends Error {}

// GET for a poll. A session that ended goes to the login page; any other refusal stops the poll (it
// would be refused again, and every refusal is a row in the audit log).
async function fetchOk(url) {
  const r = await fetch(url, {credentials: "same-origin", headers: {"X-Llmos-Poll": "1"}});
  if (r.status === 401) {
    window.location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Refused("logged out");
  }
  if (!r.ok) throw new Refused(`HTTP ${r.status}`);
  return r;
}

function stopped(el, why) {
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = `Live refresh stopped (${why}): reload the page.`;
  el.prepend(note);
}

// <div data-poll="URL" data-every-ms="N">: its content is replaced by GET URL every N ms; a fragment
// holding [data-done] (a job that finished) is the last one.
function poll(el) {
  const every = Number(el.dataset.everyMs || 2000);
  const tick = async () => {
    if (!document.hidden) {
      try {
        el.innerHTML = await (await fetchOk(el.dataset.poll)).text();
      } catch (e) {
        if (e instanceof Refused) return stopped(el, e.message);
        /* the daemon is restarting: try again at the next tick */
      }
    }
    if (!el.querySelector("[data-done]")) setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

// <div id="logs" data-job="ID">: every log file of the job, appended as it grows.
function followLogs(el) {
  const job = el.dataset.job, offsets = {}, blocks = {};
  const tick = async () => {
    let done = false;
    try {
      done = document.querySelector("#job-body [data-done]") !== null;
      const files = await (await fetchOk(`/ui/jobs/${job}/logs`)).json();
      if (files.length && el.querySelector(".note")) el.innerHTML = "";
      for (const f of files) {
        if (!(f.name in blocks)) {
          const h = document.createElement("h3"); h.textContent = f.name;
          const pre = document.createElement("pre"); pre.className = "log"; pre.dataset.file = f.name;
          el.append(h, pre); blocks[f.name] = pre; offsets[f.name] = 0;
        }
        while (f.size > offsets[f.name]) {
          const url = `/ui/jobs/${job}/log?name=${encodeURIComponent(f.name)}&offset=${offsets[f.name]}`;
          const chunk = await (await fetchOk(url)).json();
          if (chunk.offset === offsets[f.name]) break;
          const pre = blocks[f.name], atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(document.createTextNode(chunk.text)); offsets[f.name] = chunk.offset;
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }
      }
      if (!files.length && el.querySelector(".note")) el.querySelector(".note").textContent = done ? "No logs." : "No logs yet.";
    } catch (e) {
      if (e instanceof Refused) return stopped(el, e.message);
      /* the daemon is restarting: try again at the next tick */
    }
    if (!done) setTimeout(tick, 1000);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(poll);
  const logs = document.getElementById("logs");
  if (logs) followLogs(logs);
  document.addEventListener("submit", (ev) => {
    const button = ev.target.querySelector("button.danger");
    if (button && !window.confirm(button.textContent + "?")) ev.preventDefault();
  });
});
