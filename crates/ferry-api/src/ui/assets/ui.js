// Ferry web UI: live tables, the run page (graph, logs, buttons) and relative times.
// Plain JavaScript, no build step. Every page works without it except live updates
// and logs.
"use strict";

(function () {
  // ---- small helpers ------------------------------------------------------------

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function fromHtml(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }

  function human(ms) {
    ms = Math.max(0, ms);
    if (ms < 1000) return ms + "ms";
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + "." + Math.floor((ms % 1000) / 100) + "s";
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    return h > 0 ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
  }

  function relative(ts) {
    var d = (Date.now() - ts) / 1000;
    if (d < 45) return "just now";
    if (d < 90) return "1 min ago";
    if (d < 45 * 60) return Math.round(d / 60) + " min ago";
    if (d < 24 * 3600) return Math.round(d / 3600) + " h ago";
    return new Date(ts).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function refreshTimes(root) {
    $$("time[data-ts]", root).forEach(function (t) {
      var ts = Number(t.dataset.ts);
      t.textContent = relative(ts);
      t.title = new Date(ts).toLocaleString();
    });
    $$(".dur[data-start]", root).forEach(function (d) {
      d.textContent = human(Date.now() - Number(d.dataset.start));
    });
  }

  function badge(status, cls, icon, label) {
    var b = el("span", "badge s-" + cls);
    b.dataset.status = status;
    var i = el("span", "icon", icon);
    i.setAttribute("aria-hidden", "true");
    b.appendChild(i);
    b.appendChild(document.createTextNode(" " + label));
    return b;
  }

  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable);
  }

  function live(url, handlers) {
    var source = new EventSource(url);
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (e) {
        var data;
        try { data = JSON.parse(e.data); } catch (_) { return; }
        handlers[name](data);
      });
    });
    source.onopen = function () { document.body.dataset.live = "on"; };
    source.onerror = function () { document.body.dataset.live = "off"; };
    return source;
  }

  // ---- tables that update themselves -----------------------------------------------

  function liveRuns(table) {
    var latestOnly = table.dataset.latestOnly === "true";
    var body = $("tbody", table);
    live(table.dataset.streamRuns, {
      run: function (d) {
        if (latestOnly) {
          $$("tr[data-project]", table).forEach(function (tr) {
            if (tr.dataset.project !== d.project) return;
            var cell = $("td.latest", tr);
            cell.innerHTML = d.latest;
            refreshTimes(cell);
          });
          return;
        }
        var row = fromHtml(d.row);
        var old = document.getElementById("run-" + d.id);
        if (old) {
          old.replaceWith(row);
        } else {
          body.insertBefore(row, body.firstChild);
          row.classList.add("fresh");
          var empty = $(".empty", table.parentNode);
          if (empty) empty.remove();
          while (body.children.length > 100) body.lastElementChild.remove();
        }
        refreshTimes(row);
      }
    });
  }

  function liveEvents(table) {
    var body = $("tbody", table);
    live(table.dataset.streamEvents, {
      event: function (d) {
        if (document.getElementById("event-" + d.id)) return;
        var row = fromHtml(d.row);
        body.insertBefore(row, body.firstChild);
        row.classList.add("fresh");
        var empty = $(".empty", table.parentNode);
        if (empty) empty.remove();
        while (body.children.length > 500) body.lastElementChild.remove();
        refreshTimes(row);
      }
    });
  }

  // ---- the run page --------------------------------------------------------------

  function runPage(data) {
    var steps = data.steps || [];
    var state = data.state;
    var panes = $$(".log-pane");
    var nodes = $$("svg.graph a.node");
    var picker = $("#log-job");
    var search = $("#log-search");
    var follow = $("#log-follow");
    var jump = $("#jump-failed");
    var matches = $("#log-matches");
    var selected = picker ? Number(picker.value) : 0;
    var chosenByPerson = false;
    var next = {};     // job name -> next expected line number
    var lastStep = {}; // job name -> step index of the last line shown
    var query = "";
    var baseTitle = document.title;

    function indexOf(name) {
      for (var i = 0; i < panes.length; i++) if (panes[i].dataset.job === name) return i;
      return -1;
    }

    function job(i) { return state && state.jobs[i]; }
    function failed(j) { return j && j.cls === "bad"; }

    function stepName(i, step) {
      var names = steps[i] || [];
      return names[step] || "Step " + (step + 1);
    }

    function logOf(i) { return panes[i] && $(".log", panes[i]); }

    function atBottom(log) { return log.scrollHeight - log.scrollTop - log.clientHeight < 30; }

    function scrollDown(i) {
      var log = logOf(i);
      if (log && follow && follow.checked) log.scrollTop = log.scrollHeight;
    }

    function select(i, byPerson) {
      if (i < 0 || i >= panes.length) return;
      selected = i;
      if (byPerson) chosenByPerson = true;
      panes.forEach(function (p, k) { p.hidden = k !== i; });
      nodes.forEach(function (n) { n.classList.toggle("selected", Number(n.dataset.index) === i); });
      if (picker) picker.value = String(i);
      if (history.replaceState) history.replaceState(null, "", "#job-" + i);
      updateJump();
      countMatches();
      scrollDown(i);
    }

    function updateJump() {
      if (jump) jump.hidden = !failed(job(selected));
    }

    function applyState(s) {
      state = s;
      var run = s.run;
      document.body.dataset.runStatus = run.status;
      document.title = run.icon + " " + baseTitle;
      var holder = $("#run-status");
      if (holder) {
        holder.textContent = "";
        holder.appendChild(badge(run.status, run.cls, run.icon, run.label));
      }
      var dur = $("#run-duration .dur");
      if (dur) {
        if (run.started_at && run.finished_at) {
          delete dur.dataset.start;
          dur.classList.remove("muted");
          dur.textContent = human(run.finished_at - run.started_at);
        } else if (run.started_at) {
          dur.dataset.start = String(run.started_at);
          dur.classList.remove("muted");
          dur.textContent = human(Date.now() - run.started_at);
        }
      }
      var cancel = $("#cancel-form"), rerun = $("#rerun-form"), rerunFailed = $("#rerun-failed");
      if (cancel) cancel.hidden = run.finished;
      if (rerun) rerun.hidden = !run.finished;
      if (rerunFailed) rerunFailed.hidden = !run.failed_jobs;
      $$("[data-approve-job]").forEach(function (c) {
        var i = indexOf(c.dataset.approveJob);
        var j = s.jobs[i];
        c.hidden = !j || j.status !== "waiting_approval";
      });
      s.jobs.forEach(function (j, i) {
        nodes.forEach(function (n) {
          if (Number(n.dataset.index) !== i) return;
          n.setAttribute("class", "node s-" + j.cls + (i === selected ? " selected" : ""));
          n.setAttribute("aria-label", j.name + ": " + j.label);
          var icon = $(".icon", n), meta = $(".meta", n);
          if (icon) icon.textContent = j.icon;
          if (meta) meta.textContent = j.meta;
        });
        var pane = panes[i];
        if (pane) {
          var holder = $(".job-status", pane);
          holder.textContent = "";
          holder.appendChild(badge(j.status, j.cls, j.icon, j.label));
          $(".job-reason", pane).textContent = j.reason ? " " + j.reason : "";
        }
      });
      if (!chosenByPerson) {
        var running = s.jobs.findIndex(function (j) { return j.status === "running"; });
        var bad = s.jobs.findIndex(failed);
        var want = running >= 0 ? running : bad;
        if (want >= 0 && want !== selected) select(want, false);
      }
      updateJump();
    }

    function highlight(line) {
      var t = $(".t", line);
      var text = t.textContent;
      if (!query) {
        line.classList.remove("hit");
        if (t.firstElementChild) t.textContent = text;
        return false;
      }
      var lower = text.toLowerCase();
      var at = lower.indexOf(query);
      if (at < 0) {
        line.classList.remove("hit");
        if (t.firstElementChild) t.textContent = text;
        return false;
      }
      var out = "", from = 0;
      while (at >= 0) {
        out += escapeHtml(text.slice(from, at)) + "<mark>" + escapeHtml(text.slice(at, at + query.length)) + "</mark>";
        from = at + query.length;
        at = lower.indexOf(query, from);
      }
      t.innerHTML = out + escapeHtml(text.slice(from));
      line.classList.add("hit");
      return true;
    }

    function countMatches() {
      if (!matches) return;
      if (!query) { matches.textContent = ""; return; }
      var log = logOf(selected);
      var n = log ? $$(".l.hit", log).length : 0;
      matches.textContent = n === 1 ? "1 matching line" : n + " matching lines";
    }

    function applySearch() {
      query = (search.value || "").trim().toLowerCase();
      panes.forEach(function (p) {
        var log = $(".log", p);
        log.classList.toggle("filtering", !!query);
        $$(".l", log).forEach(highlight);
      });
      countMatches();
    }

    function addLines(d) {
      var i = indexOf(d.job);
      var log = logOf(i);
      if (!log) return;
      var fragment = document.createDocumentFragment();
      var empty = $(".log-empty", log);
      if (empty) empty.remove();
      if (d.skipped > 0 && next[d.job] === undefined) {
        fragment.appendChild(el("div", "skipped", d.skipped + " earlier lines are not shown here; `ferry logs` prints them all."));
      }
      var expected = next[d.job] || 0;
      d.lines.forEach(function (line) {
        var n = line[0], step = line[1], text = line[2];
        if (n < expected) return; // sent again after a reconnect
        expected = n + 1;
        if (lastStep[d.job] !== step) {
          lastStep[d.job] = step;
          var h = el("div", "step", "▸ " + stepName(i, step));
          h.dataset.step = String(step);
          fragment.appendChild(h);
        }
        var row = el("div", "l");
        row.dataset.n = String(n);
        row.dataset.step = String(step);
        row.appendChild(el("span", "n", String(n + 1)));
        row.appendChild(el("span", "t", text));
        if (query) highlight(row);
        fragment.appendChild(row);
      });
      next[d.job] = expected;
      log.appendChild(fragment);
      if (query && i === selected) countMatches();
      if (i === selected) scrollDown(i);
    }

    function jumpToFailure() {
      var log = logOf(selected);
      if (!log || !failed(job(selected))) return;
      var last = $$(".l", log).pop();
      var target = null;
      if (last) {
        var step = last.dataset.step;
        $$(".step", log).forEach(function (s) { s.classList.remove("failed"); if (s.dataset.step === step) target = s; });
        if (target) target.classList.add("failed");
      }
      target = target || last;
      if (!target) return;
      if (follow) follow.checked = false;
      log.scrollTop = target.offsetTop - log.offsetTop - 8;
      log.focus();
    }

    // Wiring.
    nodes.forEach(function (n) {
      n.addEventListener("click", function (e) {
        e.preventDefault();
        select(Number(n.dataset.index), true);
        panes[selected].scrollIntoView({ block: "nearest" });
      });
    });
    if (picker) picker.addEventListener("change", function () { select(Number(picker.value), true); });
    if (search) {
      var timer = null;
      search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(applySearch, 100); });
      search.addEventListener("keydown", function (e) {
        if (e.key === "Escape") { search.value = ""; applySearch(); search.blur(); }
      });
    }
    if (follow) follow.addEventListener("change", function () { scrollDown(selected); });
    panes.forEach(function (p) {
      var log = $(".log", p);
      log.addEventListener("scroll", function () {
        if (follow && Number(p.dataset.index) === selected) follow.checked = atBottom(log);
      });
    });
    if (jump) jump.addEventListener("click", function (e) { e.preventDefault(); jumpToFailure(); });
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
      if (e.key === "/" && search) { e.preventDefault(); search.focus(); }
      else if (e.key === "[") select(Math.max(0, selected - 1), true);
      else if (e.key === "]") select(Math.min(panes.length - 1, selected + 1), true);
      else if (e.key === "f" && follow) { follow.checked = !follow.checked; scrollDown(selected); }
      else if (e.key === "e") jumpToFailure();
    });

    var fromHash = /^#job-(\d+)$/.exec(location.hash);
    if (fromHash) select(Number(fromHash[1]), true); else select(selected, false);
    if (state) applyState(state);
    live(data.stream, { state: applyState, log: addLines });
  }

  // ---- start -----------------------------------------------------------------------

  function start() {
    var redirect = document.body.dataset.redirect;
    if (redirect) { location.replace(redirect); return; }
    refreshTimes(document);
    setInterval(function () { refreshTimes(document); }, 1000);
    $$("[data-back]").forEach(function (a) {
      a.addEventListener("click", function (e) {
        if (history.length > 1) { e.preventDefault(); history.back(); }
      });
    });
    $$("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    $$("table[data-stream-runs]").forEach(liveRuns);
    $$("table[data-stream-events]").forEach(liveEvents);
    var runData = $("#run-data");
    if (runData) {
      try { runPage(JSON.parse(runData.textContent)); } catch (e) { console.error("Ferry run page:", e); }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// ---- live parts of pages (deploys, services) and confirmation dialogs --------------
(function () {
  function all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // Live parts (the deploy page, the service page): the server sends the part
  // rendered again after each change; the stream closes once nothing will change.
  function livePart(root) {
    var source = new EventSource(root.dataset.livePart);
    source.addEventListener("part", function (e) {
      var d;
      try { d = JSON.parse(e.data); } catch (_) { return; }
      if (typeof d.html === "string") root.innerHTML = d.html;
      if (d.state) root.dataset.state = d.state;
      if (d.finished) { source.close(); document.body.dataset.live = "done"; }
    });
    source.onopen = function () { document.body.dataset.live = "on"; };
    source.onerror = function () { if (document.body.dataset.live !== "done") document.body.dataset.live = "off"; };
  }

  // Buttons that change what runs link to a confirmation page; with the script, that
  // page's confirmation opens in a dialog over the current page instead.
  function dialog() {
    var d = document.getElementById("confirm-dialog");
    if (!d) {
      d = document.createElement("dialog");
      d.id = "confirm-dialog";
      d.className = "confirm-dialog";
      d.addEventListener("click", function (e) { if (e.target === d) d.close(); });
      // A closed dialog keeps nothing: the next question is fetched afresh.
      d.addEventListener("close", function () { d.replaceChildren(); });
      document.body.appendChild(d);
    }
    return d;
  }

  // One listener for the whole page, so links in a live part swapped in later work too.
  function confirmLinks() {
    document.addEventListener("click", function (e) {
      var a = e.target.closest && e.target.closest("a[data-confirm]");
      if (!a || e.ctrlKey || e.metaKey || e.shiftKey || typeof HTMLDialogElement !== "function") return;
      e.preventDefault();
      fetch(a.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
        .then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var section = page.querySelector("section.confirm");
          if (!section) { location.href = a.href; return; }
          var d = dialog();
          d.replaceChildren(document.importNode(section, true));
          all("[data-dismiss]", d).forEach(function (x) {
            x.addEventListener("click", function (ev) { ev.preventDefault(); d.close(); });
          });
          d.showModal();
          var keep = d.querySelector("[data-dismiss]");
          if (keep) keep.focus();
        })
        .catch(function () { location.href = a.href; });
    });
  }

  function start() {
    all("[data-live-part]").forEach(livePart);
    confirmLinks();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
