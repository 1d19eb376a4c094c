/* Long selects written once per page (mappings/admin_widgets.py, SharedOptionsSelect): each
   select holds its chosen option and a data-options key; the options are copied in from the
   page's <template id="invsync-options-KEY">, keeping what was chosen. */
(function () {
  "use strict";
  function fill(select) {
    if (select.dataset.optionsFilled) return;
    var template = document.getElementById("invsync-options-" + select.dataset.options);
    if (!template) return;
    var chosen = Array.prototype.map.call(select.selectedOptions, function (o) { return o.value; });
    select.innerHTML = template.innerHTML;
    Array.prototype.forEach.call(select.options, function (option) {
      option.selected = option.defaultSelected = chosen.indexOf(option.value) !== -1;
    });
    select.dataset.optionsFilled = "1";
  }
  function fillAll(root) {
    Array.prototype.forEach.call(root.querySelectorAll("select[data-options]"), fill);
  }
  document.addEventListener("DOMContentLoaded", function () { fillAll(document); });
  // The row "Add another" makes (Django's inlines.js) is a copy of the empty form's.
  document.addEventListener("formset:added", function (event) { fillAll(event.target); });
})();
