/* Progressive enhancement only: every page works without JavaScript. */
(function () {
  "use strict";
  // After a refused submission, move focus to the error summary so that it is read first (RGAA 11.10).
  var summary = document.getElementById("resume-erreurs");
  if (summary) { summary.focus(); }
})();

(function () {
  "use strict";
  // Live FAQ suggestions while the usager types the subject of their request.
  var box = document.getElementById("faq-suggestions");
  var source = document.querySelector("[data-faq-source]");
  if (!box || !source) { return; }
  var timer = null;
  var last = "";
  function render(entries) {
    box.textContent = "";
    if (!entries.length) { return; }
    var title = document.createElement("p");
    title.textContent = "Questions fréquentes liées à votre demande :";
    box.appendChild(title);
    var list = document.createElement("ul");
    list.className = "faq-list";
    entries.forEach(function (e) {
      var li = document.createElement("li");
      var details = document.createElement("details");
      var summary = document.createElement("summary");
      summary.textContent = e.question;
      var p = document.createElement("p");
      p.textContent = e.answer;
      details.appendChild(summary);
      details.appendChild(p);
      li.appendChild(details);
      list.appendChild(li);
    });
    box.appendChild(list);
  }
  function lookup() {
    var q = source.value.trim();
    if (q.length < 3 || q === last) { return; }
    last = q;
    var url = box.getAttribute("data-endpoint") + "?service=" + encodeURIComponent(box.getAttribute("data-service")) +
      "&q=" + encodeURIComponent(q);
    fetch(url, { headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : { entries: [] }; })
      .then(function (data) { render(data.entries || []); })
      .catch(function () { /* suggestions are optional */ });
  }
  source.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(lookup, 300);
  });
})();
