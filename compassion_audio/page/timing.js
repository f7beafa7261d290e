// Pure timing for the session player: where a time falls among cues, sections and breaths.
// Shared by player.js through window.SessionTiming; nothing here touches the page.
window.SessionTiming = (function () {
  "use strict";

  function fmt(seconds) {
    var s = Math.max(0, Math.floor(seconds + 1e-6));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }

  function chapters(t) {
    return t.chapters.length ? t.chapters : [{ title: t.title, start: 0, end: t.duration }];
  }

  function lastAtOrBefore(items, time, key) {
    // Index of the last item whose [key] (or value, without a key) <= time, -1 if none.
    var lo = 0, hi = items.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if ((key ? items[mid][key] : items[mid]) <= time) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  function chapterAt(t, time) { return Math.max(0, lastAtOrBefore(chapters(t), time + 1e-3, "start")); }

  function cueAt(t, time) {
    var i = lastAtOrBefore(t.cues, time, "start");
    return i >= 0 && time < t.cues[i].end ? i : -1;
  }

  function stretchAt(t, time) {
    var i = lastAtOrBefore(t.breathing, time, "start");
    return i >= 0 && time < t.breathing[i].end ? t.breathing[i] : null;
  }

  function ease(u) { return 0.5 - 0.5 * Math.cos(Math.PI * Math.min(1, Math.max(0, u))); }

  // Where the breath is at `time`: the tones' own cycle starts (tones.cycle_start_frame) and
  // phase lengths, and the same raised-cosine glide the tone's pitch follows.
  function breathAt(stretch, time) {
    var cycles = stretch.cycles, last = cycles.length - 1;
    var k = lastAtOrBefore(cycles, time);
    if (k < 0 || k >= last) { return { phase: "rest", size: 0, left: stretch.end - time }; }
    var u = time - cycles[k];
    var a = stretch["in"], b = a + stretch.holdIn, c = b + stretch.out;
    if (u < a) { return { phase: "in", size: ease(u / a), left: a - u }; }
    if (u < b) { return { phase: "holdIn", size: 1, left: b - u }; }
    if (u < c) { return { phase: "out", size: 1 - ease((u - b) / stretch.out), left: c - u }; }
    return { phase: "holdOut", size: 0, left: cycles[k + 1] - time };
  }

  function holdPoints(t) {
    // The sections' ends, each with its section's index; the last ends with the track.
    var points = [];
    chapters(t).forEach(function (c, i) { if (c.end < t.duration - 0.5) { points.push({ at: c.end, index: i }); } });
    return points;
  }

  return { fmt: fmt, chapters: chapters, chapterAt: chapterAt, cueAt: cueAt, stretchAt: stretchAt,
           breathAt: breathAt, holdPoints: holdPoints, ease: ease };
})();
