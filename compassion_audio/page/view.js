// How the session page looks, as the facilitator sets it: captions, text size, the facilitator
// view in full screen. Kept for this visit only (the page stores nothing).
window.SessionView = (function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var root = document.documentElement;
  var TEXT_STEPS = [0.7, 0.85, 1, 1.2, 1.4, 1.65, 1.95];
  var state = { captions: true, textStep: 2, facilitator: false, ownFullscreen: false };

  function setCaptions(on) {
    state.captions = on;
    root.classList.toggle("captions-off", !on);
    $("captions-toggle").setAttribute("aria-pressed", String(on));
  }

  function setTextStep(i) {
    state.textStep = Math.min(TEXT_STEPS.length - 1, Math.max(0, i));
    root.style.setProperty("--text-scale", String(TEXT_STEPS[state.textStep]));
    $("size-value").textContent = Math.round(100 * TEXT_STEPS[state.textStep]) + "%";
  }

  function fullscreenElement() { return document.fullscreenElement || document.webkitFullscreenElement; }

  function setFacilitator(on) {
    state.facilitator = on;
    root.classList.toggle("facilitator", on);
    $("facilitator").setAttribute("aria-pressed", String(on));
    if (on && !fullscreenElement()) {
      var request = root.requestFullscreen || root.webkitRequestFullscreen;
      if (request) {
        state.ownFullscreen = true;
        var asked = request.call(root);
        // Refused (no user gesture, or not allowed): the view still changes, in the window.
        if (asked && asked.catch) { asked.catch(function () { state.ownFullscreen = false; }); }
      }
    } else if (!on && fullscreenElement() && state.ownFullscreen) {
      state.ownFullscreen = false;
      var exit = document.exitFullscreen || document.webkitExitFullscreen;
      var left = exit && exit.call(document);
      if (left && left.catch) { left.catch(function () {}); }
    }
  }

  function fullscreenChanged() {
    // Leaving full screen (Esc) leaves the facilitator view it was opened with.
    if (!fullscreenElement() && state.ownFullscreen) {
      state.ownFullscreen = false;
      if (state.facilitator) { setFacilitator(false); }
    }
  }

  document.addEventListener("fullscreenchange", fullscreenChanged);
  document.addEventListener("webkitfullscreenchange", fullscreenChanged);
  $("captions-toggle").addEventListener("click", function () { setCaptions(!state.captions); });
  $("smaller").addEventListener("click", function () { setTextStep(state.textStep - 1); });
  $("larger").addEventListener("click", function () { setTextStep(state.textStep + 1); });
  $("facilitator").addEventListener("click", function () { setFacilitator(!state.facilitator); });
  setTextStep(state.textStep);

  return {
    toggleCaptions: function () { setCaptions(!state.captions); },
    toggleFacilitator: function () { setFacilitator(!state.facilitator); },
    textSize: function (step) { setTextStep(state.textStep + step); }
  };
})();
