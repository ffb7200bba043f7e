/* modelyard workbench: the little glue htmx and Alpine do not cover. No inline scripts anywhere (CSP). */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the CSRF token (plain forms carry it as a hidden field).
  document.addEventListener("htmx:configRequest", function (evt) {
    evt.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  function scrollIntoViewIfChat(el) {
    var messages = el.closest(".messages");
    if (messages) {
      el.scrollIntoView({ block: "end" });
    }
  }

  // Streamed text arrives as JSON strings and is appended as text nodes: model output is never parsed as HTML.
  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    var el = evt.target;
    var mode = el && el.getAttribute && el.getAttribute("data-append");
    if (!mode) {
      return;
    }
    evt.preventDefault();
    var data;
    try {
      data = JSON.parse(evt.detail.data);
    } catch (e) {
      return;
    }
    if (mode === "tool") {
      var row = el.querySelector('[data-index="' + Number(data.index) + '"]');
      if (!row) {
        row = document.createElement("div");
        row.className = "tool-call";
        row.setAttribute("data-index", String(Number(data.index)));
        var name = document.createElement("span");
        name.className = "tool-name";
        var args = document.createElement("code");
        row.append(name, args);
        el.append(row);
      }
      row.firstChild.textContent = String(data.name || "");
      row.lastChild.textContent = String(data.arguments || "");
    } else {
      el.append(document.createTextNode(String(data)));
      var details = el.closest("details[data-reasoning]");
      if (details) {
        details.hidden = false;
      }
    }
    scrollIntoViewIfChat(el);
  });

  // Enter sends, Shift+Enter makes a new line (and IME composition is left alone).
  document.addEventListener("keydown", function (evt) {
    var el = evt.target;
    if (evt.key !== "Enter" || evt.shiftKey || evt.isComposing || !el.matches || !el.matches("textarea[data-enter-submits]")) {
      return;
    }
    evt.preventDefault();
    var form = el.form;
    if (form && el.value.trim() !== "") {
      form.requestSubmit();
    }
  });

  // Chat: clear the composer once the message is accepted, and keep the newest message in view.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail.elt;
    if (!evt.detail.successful || !form || !form.matches || !form.matches("form[data-clear-after-send]")) {
      return;
    }
    var box = form.querySelector("textarea[data-enter-submits]");
    if (box) {
      box.value = "";
      box.focus();
    }
  });

  // Forms that start over once their request succeeded (e.g. a key was created).
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail.elt;
    if (evt.detail.successful && form && form.matches && form.matches("form[data-reset-on-success]")) {
      if (!evt.detail.xhr || !evt.detail.xhr.getResponseHeader("X-Error-Status")) {
        form.reset();
      }
    }
  });

  document.addEventListener("htmx:afterSettle", function (evt) {
    var target = evt.detail.target;
    if (target && target.id === "messages" && target.lastElementChild) {
      target.lastElementChild.scrollIntoView({ block: "end" });
    }
  });

  // Plain forms that need a confirmation (htmx ones use hx-confirm).
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      evt.preventDefault();
    }
  }, true);

  // Dismiss buttons on flash messages; errors from htmx requests land in #flash.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("[data-dismiss]");
    if (button) {
      var box = button.closest(".alert");
      if (box) {
        box.remove();
      }
    }
  });

  // Open a chat with its newest message in view.
  document.addEventListener("DOMContentLoaded", function () {
    var messages = document.getElementById("messages");
    if (messages && messages.lastElementChild) {
      messages.lastElementChild.scrollIntoView({ block: "end" });
    }
  });
})();
