/* SAU — bouton « Besoin d'aide ? » à intégrer sur les pages d'un service :
   <script src="{{ base }}/aide/embed.js" data-service="toodego" defer></script>
   Sans JavaScript, un simple lien suffit : <a href="{{ base }}/aide?service=toodego">Besoin d'aide ?</a> */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var service = script.getAttribute("data-service") || "";
  function add() {
    var link = document.createElement("a");
    link.href = "{{ base }}/aide?service=" + encodeURIComponent(service) +
      "&page=" + encodeURIComponent(window.location.href);
    link.textContent = "Besoin d'aide ?";
    link.setAttribute("data-sau-help", "");
    var s = link.style;
    s.position = "fixed"; s.right = "1rem"; s.bottom = "1rem"; s.zIndex = "2147483000";
    s.background = "#000091"; s.color = "#ffffff"; s.padding = "0.75rem 1.25rem";
    s.borderRadius = "2rem"; s.fontFamily = "system-ui, sans-serif"; s.fontSize = "1rem";
    s.fontWeight = "600"; s.textDecoration = "none"; s.boxShadow = "0 2px 6px rgba(0,0,0,.3)";
    link.addEventListener("focus", function () { s.outline = "3px solid #ffbf47"; s.outlineOffset = "2px"; });
    link.addEventListener("blur", function () { s.outline = ""; });
    // In a labelled landmark, so that screen-reader users find it from the host page's landmarks.
    var region = document.createElement("aside");
    region.setAttribute("aria-label", "Assistance SAU");
    region.appendChild(link);
    document.body.appendChild(region);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", add); } else { add(); }
})();
