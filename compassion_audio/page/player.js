// The session player: everything is drawn from audio.currentTime and the embedded data.
// No storage, no network: the data is in the page, the audio beside it.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("page-data").textContent);
  var tracks = data.tracks;
  var $ = function (id) { return document.getElementById(id); };
  var root = document.documentElement;
  var audio = $("audio");
  var seekBar = $("seek");
  var reducedMotion = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : { matches: false };

  var HOLD_LEAD = 0.02;      // stop this far before a section's end: the pause before the next words
  var RESTART_AFTER = 3;     // "previous" restarts the current section once this far into it
  var BREATH_MIN = 0.42;     // circle scale at the bottom of the out-breath (1 at the top of the in-breath)
  var PHASES = { "in": "Breathe in", holdIn: "Hold", out: "Breathe out", holdOut: "Hold", rest: "Breathe naturally" };

  var T = window.SessionTiming;
  var fmt = T.fmt, chapters = T.chapters, chapterAt = T.chapterAt, cueAt = T.cueAt;
  var stretchAt = T.stretchAt, breathAt = T.breathAt, holdPoints = T.holdPoints;

  var view = window.SessionView;

  var state = {
    track: 0, hold: false, holdTouched: false, held: null, played: false, ended: false,
    dragging: false, lastTime: null, cue: -2, chapter: -2, shownTime: "", pending: null
  };

  // ---- drawing ------------------------------------------------------------------

  function track() { return tracks[state.track]; }

  function buildTrack() {
    var t = track();
    $("track-title").textContent = t.title;
    document.title = tracks.length > 1 ? t.title + " · " + data.title : t.title;
    $("time-total").textContent = fmt(t.duration);
    seekBar.max = String(t.duration);

    var marks = $("marks");
    marks.textContent = "";
    chapters(t).forEach(function (c) {
      var mark = document.createElement("span");
      mark.className = "mark";
      mark.style.left = (100 * c.start / t.duration) + "%";
      mark.dataset.start = String(c.start);
      mark.dataset.title = c.title;
      marks.appendChild(mark);
    });

    var list = $("chapter-list");
    list.textContent = "";
    chapters(t).forEach(function (c) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "item";
      button.innerHTML = '<span class="item-title"></span><span class="item-time"></span>';
      button.firstChild.textContent = c.title;
      button.lastChild.textContent = fmt(c.start);
      button.setAttribute("aria-label", c.title + ", from " + fmt(c.start));
      button.addEventListener("click", function () { seek(c.start); });
      item.appendChild(button);
      list.appendChild(item);
    });
    $("chapters-section").hidden = !t.chapters.length;

    Array.prototype.forEach.call($("track-list").children, function (item, i) {
      var button = item.firstChild;
      if (i === state.track) { button.setAttribute("aria-current", "true"); } else { button.removeAttribute("aria-current"); }
    });
    state.cue = -2;
    state.shownTime = "";
    state.chapter = -2;
  }

  function buildTrackList() {
    var list = $("track-list");
    tracks.forEach(function (t, i) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "item";
      button.innerHTML = '<span class="item-number"></span><span class="item-title"></span><span class="item-time"></span>';
      button.children[0].textContent = String(i + 1);
      button.children[1].textContent = t.title;
      button.children[2].textContent = fmt(t.duration);
      button.setAttribute("aria-label", "Track " + (i + 1) + ": " + t.title + ", " + fmt(t.duration));
      button.addEventListener("click", function () { loadTrack(i, { play: !audio.paused || state.held !== null }); });
      item.appendChild(button);
      list.appendChild(item);
    });
    $("tracks-section").hidden = tracks.length < 2;
    $("album-title").textContent = tracks.length > 1 ? data.title : "Practice";
  }

  function drawCaption(t, time) {
    var i = cueAt(t, time);
    if (i !== state.cue) {
      state.cue = i;
      var caption = $("caption");
      caption.textContent = "";
      caption.className = "caption";
      if (i >= 0) {
        var cue = t.cues[i];
        caption.classList.add("kind-" + cue.kind);
        // The caption files' lines; a narrow screen lets them flow (the space joins them there).
        var words = document.createElement("span");
        words.className = "words";
        cue.lines.forEach(function (line, j) {
          if (j) { words.appendChild(document.createTextNode(" ")); }
          var span = document.createElement("span");
          span.className = "line";
          span.textContent = line;
          words.appendChild(span);
        });
        caption.appendChild(words);
      }
    }
    var cue = i >= 0 ? t.cues[i] : null;
    var silent = cue && (cue.kind === "pause" || cue.kind === "breathe");
    $("countdown").textContent = silent ? fmt(Math.ceil(cue.end - time - 1e-6)) : "";
  }

  function drawChapter(t, time) {
    var i = t.chapters.length ? chapterAt(t, time) : -1;
    if (i === state.chapter) { return; }
    state.chapter = i;
    $("chapter-title").textContent = i >= 0 ? t.chapters[i].title : "";
    Array.prototype.forEach.call($("chapter-list").children, function (item, j) {
      if (j === i) { item.firstChild.setAttribute("aria-current", "true"); } else { item.firstChild.removeAttribute("aria-current"); }
    });
  }

  function drawBreath(t, time) {
    var stretch = stretchAt(t, time);
    var box = $("breath");
    if (!stretch) {
      if (!box.hidden) { box.hidden = true; $("stage").classList.remove("breathing"); }
      return;
    }
    if (box.hidden) { box.hidden = false; $("stage").classList.add("breathing"); }
    var breath = breathAt(stretch, time);
    var scale = BREATH_MIN + (1 - BREATH_MIN) * breath.size;
    $("breath-circle").style.transform = "scale(" + scale.toFixed(4) + ")";
    box.dataset.phase = breath.phase;
    var label = PHASES[breath.phase];
    if (reducedMotion.matches && breath.phase !== "rest") {
      label += " \u2026 " + Math.max(1, Math.ceil(breath.left - 1e-6));
    }
    var el = $("breath-label");
    if (el.textContent !== label) { el.textContent = label; }
  }

  function drawProgress(t, time) {
    if (!state.dragging) { seekBar.value = String(time); }
    seekBar.style.setProperty("--pct", (100 * Math.min(1, time / t.duration)) + "%");
    var now = fmt(time);
    if (now !== state.shownTime) {  // text changes once a second, not every frame
      state.shownTime = now;
      seekBar.setAttribute("aria-valuetext", now + " of " + fmt(t.duration));
      $("time-now").textContent = now;
    }
  }

  function drawHint() {
    var hint = $("hint");
    var text = state.ended ? "That is the end of the practice. Thank you."
      : (!state.played && audio.paused && audio.currentTime < 0.05 ? "Ready when you are. Press play, or the space bar." : "");
    if (hint.textContent !== text) { hint.textContent = text; hint.hidden = !text; }
  }

  function draw() {
    var t = track(), time = audio.currentTime || 0;
    checkHold(t, time);
    drawProgress(t, time);
    drawChapter(t, time);
    drawCaption(t, time);
    drawBreath(t, time);
    drawHint();
  }

  // ---- playing ------------------------------------------------------------------

  var frame = null, ticker = null;

  function loop() {
    draw();
    frame = audio.paused ? null : window.requestAnimationFrame(loop);
  }

  function startLoop() {
    if (frame === null) { frame = window.requestAnimationFrame(loop); }
    // A hidden tab gets no animation frames: the ticker keeps holds on time there.
    if (ticker === null) { ticker = window.setInterval(function () { if (!audio.paused) { draw(); } }, 100); }
  }

  function stopLoop() {
    if (frame !== null) { window.cancelAnimationFrame(frame); frame = null; }
    if (ticker !== null) { window.clearInterval(ticker); ticker = null; }
  }

  function play() {
    state.played = true;
    state.ended = false;
    var started = audio.play();
    if (started && started.catch) { started.catch(function () { draw(); }); }
  }

  function togglePlay() {
    if (state.held) { continueFromHold(); return; }
    if (audio.paused) { play(); } else { audio.pause(); }
  }

  function seek(time) {
    var t = track();
    hideHold();
    state.ended = false;
    audio.currentTime = Math.min(Math.max(0, time), t.duration);
    state.lastTime = null;
    draw();
  }

  function loadTrack(i, options) {
    hideHold();
    state.track = i;
    state.ended = false;
    state.pending = options || {};
    if (!state.holdTouched) { setHold(!!track().hold, false); }
    audio.src = track().audio.split("/").map(encodeURIComponent).join("/");
    audio.load();
    buildTrack();
    draw();
  }

  audio.addEventListener("loadedmetadata", function () {
    var pending = state.pending;
    state.pending = null;
    if (pending && pending.play) { play(); }
    draw();
  });

  function step(direction) {
    if (state.held && direction > 0) { continueFromHold(); return; }
    var t = track(), time = audio.currentTime, list = chapters(t), i = chapterAt(t, time);
    var playing = !audio.paused || state.held !== null;
    if (direction > 0) {
      if (i + 1 < list.length) { seek(list[i + 1].start); } else if (state.track + 1 < tracks.length) { loadTrack(state.track + 1, { play: playing }); }
      return;
    }
    if (time - list[i].start > RESTART_AFTER) { seek(list[i].start); } else if (i > 0) { seek(list[i - 1].start); } else if (state.track > 0) { loadTrack(state.track - 1, { play: playing }); } else { seek(0); }
    if (playing && audio.paused) { play(); }
  }

  // ---- holding at section ends ----------------------------------------------------

  function checkHold(t, time) {
    if (audio.paused || state.held) { state.lastTime = audio.paused ? null : time; return; }
    var before = state.lastTime;
    state.lastTime = time;
    if (!state.hold || before === null) { return; }
    var points = holdPoints(t);
    for (var i = 0; i < points.length; i++) {
      var at = points[i].at - HOLD_LEAD;
      if (before < at && time >= at) { holdAt(t, points[i].index); return; }
    }
  }

  function holdAt(t, index) {
    audio.pause();
    var list = chapters(t);
    var next = list[index + 1];
    state.held = { trackEnd: false };
    showHold("End of \u201c" + list[index].title + "\u201d", next ? "Next: " + next.title : "");
  }

  function holdAtTrackEnd() {
    var next = tracks[state.track + 1];
    state.held = { trackEnd: true };
    showHold("End of \u201c" + track().title + "\u201d", "Next: " + next.title);
  }

  function showHold(message, next) {
    $("hold-message").textContent = message;
    $("hold-next").textContent = next;
    $("hold-panel").hidden = false;
    $("stage").classList.add("holding");
    $("continue").focus({ preventScroll: true });
  }

  function hideHold() {
    if (!state.held) { return; }
    state.held = null;
    var hadFocus = $("hold-panel").contains(document.activeElement);
    $("hold-panel").hidden = true;
    $("stage").classList.remove("holding");
    if (hadFocus) { $("play").focus({ preventScroll: true }); }
  }

  function continueFromHold() {
    var held = state.held;
    hideHold();
    if (held && held.trackEnd) { loadTrack(state.track + 1, { play: true }); } else { play(); }
  }

  function setHold(on, byUser) {
    state.hold = on;
    if (byUser) { state.holdTouched = true; }
    $("hold-toggle").setAttribute("aria-pressed", String(on));
  }

  audio.addEventListener("ended", function () {
    if (state.track + 1 < tracks.length) {
      if (state.hold) { holdAtTrackEnd(); } else { loadTrack(state.track + 1, { play: true }); }
    } else {
      state.ended = true;
    }
    draw();
  });

  // ---- input ----------------------------------------------------------------------

  $("play").addEventListener("click", togglePlay);
  $("prev").addEventListener("click", function () { step(-1); });
  $("next").addEventListener("click", function () { step(1); });
  $("continue").addEventListener("click", continueFromHold);
  $("hold-toggle").addEventListener("click", function () { setHold(!state.hold, true); });

  seekBar.addEventListener("input", function () { state.dragging = true; seek(Number(seekBar.value)); });
  seekBar.addEventListener("change", function () { state.dragging = false; });
  seekBar.addEventListener("keydown", function (event) {
    var jump = { ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5, PageDown: -30, PageUp: 30 }[event.key];
    if (jump) { event.preventDefault(); event.stopPropagation(); seek(audio.currentTime + jump); }
  });

  audio.addEventListener("play", function () {
    root.classList.add("playing");
    $("play").setAttribute("aria-label", "Pause");
    state.lastTime = null;
    startLoop();
  });
  audio.addEventListener("pause", function () {
    root.classList.remove("playing");
    $("play").setAttribute("aria-label", "Play");
    stopLoop();
    draw();
  });
  audio.addEventListener("seeking", function () { state.lastTime = null; });
  audio.addEventListener("seeked", draw);
  audio.addEventListener("timeupdate", function () { if (audio.paused) { draw(); } });

  var ACTIVATES = { BUTTON: true, A: true, SUMMARY: true, INPUT: true, SELECT: true, TEXTAREA: true };

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target, key = event.key;
    var native = target && ACTIVATES[target.tagName];
    if (key === " " || key === "Spacebar" || key === "Enter") {
      if (native) { return; }  // a focused control does its own thing
      event.preventDefault();
      togglePlay();
    } else if (key === "ArrowRight" || key === "PageDown") {
      event.preventDefault();
      step(1);
    } else if (key === "ArrowLeft" || key === "PageUp") {
      event.preventDefault();
      step(-1);
    } else if (key === "f" || key === "F") {
      view.toggleFacilitator();
    } else if (key === "c" || key === "C") {
      view.toggleCaptions();
    } else if (key === "h" || key === "H") {
      setHold(!state.hold, true);
    } else if (key === "+" || key === "=") {
      view.textSize(1);
    } else if (key === "-" || key === "_") {
      view.textSize(-1);
    }
  });

  if (reducedMotion.addEventListener) { reducedMotion.addEventListener("change", draw); }

  buildTrackList();
  loadTrack(0, {});
})();
