/*
 * The newsletter's embeddable signup box (see docs/embed.md).
 *
 * Finds every <form data-newsletter-signup>, sends it as JSON to the form's
 * data-endpoint (POST /api/subscribe) and shows the answer in place, in the
 * form's [data-status] element, which is a live region: screen readers
 * announce the answer. Plain JavaScript, no dependencies, no cookies.
 */
(function () {
  "use strict";

  var FALLBACK = {
    it: { network: "Non riusciamo a contattare il server: riprova tra poco.",
          busy: "Troppi tentativi: riprova tra qualche minuto.",
          error: "Qualcosa è andato storto: riprova tra poco." },
    en: { network: "We cannot reach the server: please try again shortly.",
          busy: "Too many attempts: please try again in a few minutes.",
          error: "Something went wrong: please try again shortly." }
  };

  function language(form) {
    var lang = (form.getAttribute("data-language") || document.documentElement.lang || "it").slice(0, 2);
    return FALLBACK[lang] ? lang : "it";
  }

  function words(element) {
    return element ? element.textContent.replace(/\s+/g, " ").trim() : undefined;
  }

  function setup(form) {
    var endpoint = form.getAttribute("data-endpoint");
    var email = form.querySelector("input[name=email]");
    var consent = form.querySelector("input[name=consent]");
    var button = form.querySelector("button");
    var status = form.querySelector("[data-status]");
    var lang = language(form);
    form.setAttribute("novalidate", "");

    function show(message, kind) {
      // Errors interrupt, success waits its turn; the text change is what gets announced.
      status.setAttribute("aria-live", kind === "error" ? "assertive" : "polite");
      status.setAttribute("data-kind", kind);
      status.textContent = message;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var topics = Array.prototype.map.call(form.querySelectorAll("input[name=topics]:checked"), function (box) {
        return box.value;
      });
      var body = {
        email: email.value,
        consent: Boolean(consent && consent.checked),
        topics: topics,
        language: lang,
        source: window.location.href,
        consent_text: consent && consent.labels && consent.labels.length ? words(consent.labels[0]) : undefined
      };
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
      show("", "");
      // A new try: nothing is wrong until the answer says so.
      [email, consent].forEach(function (field) { if (field) { field.removeAttribute("aria-invalid"); } });
      fetch(endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept-Language": lang },
        body: JSON.stringify(body),
        credentials: "omit"
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.status === 202) {
            form.reset();
            show(data.message, "success");
            return;
          }
          var message = data.message || (response.status === 429 ? FALLBACK[lang].busy : FALLBACK[lang].error);
          show(message, "error");
          var field = /email/.test(data.error || "") ? email : (data.error === "consent_required" ? consent : null);
          if (field) {
            field.setAttribute("aria-invalid", "true");
            field.focus();
          }
        });
      }).catch(function () {
        show(FALLBACK[lang].network, "error");
      }).then(function () {
        button.disabled = false;
        form.removeAttribute("aria-busy");
      });
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-newsletter-signup]"), setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
