// The door page: reads a ticket's QR code with the camera where the browser has a BarcodeDetector,
// else takes a typed code (a hand scanner types it too), and shows the door API's answer.
"use strict";

(function () {
  const SAME_CODE_PAUSE_MS = 3000; // the camera sees a held ticket many times a second: answer it once

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function timeOf(iso) {
    const at = new Date(iso);
    return isNaN(at) ? iso : at.toLocaleTimeString(document.documentElement.lang || undefined);
  }

  function door(section) {
    const answer = document.getElementById("door-answer");
    const form = document.getElementById("door-form");
    const input = document.getElementById("door-code");
    let lastCode = "";
    let lastAt = 0;

    function say(outcome, text, checkedInAt) {
      answer.dataset.outcome = outcome;
      answer.dataset.checkedInAt = checkedInAt || "";
      answer.textContent = text;
    }

    async function checkIn(code) {
      code = code.trim();
      if (!code) {
        return;
      }
      let response;
      let data = null;
      try {
        response = await fetch(section.dataset.checkInUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
          body: JSON.stringify({ code: code }),
        });
        data = await response.json().catch(function () {
          return null;
        });
      } catch (error) {
        say("refused", section.dataset.network);
        return;
      }
      if (response.status === 200) {
        say("admitted", section.dataset.admitted + ": " + data.label + " · " + data.holder, data.checked_in_at);
      } else if (response.status === 409) {
        say("refused", section.dataset.already + " " + timeOf(data.checked_in_at), data.checked_in_at);
      } else if (response.status === 410) {
        say("refused", section.dataset.void);
      } else if (response.status === 400) {
        say("refused", section.dataset.forged);
      } else if (response.status === 401 || response.status === 403) {
        say("refused", section.dataset.login);
      } else {
        say("refused", section.dataset.server);
      }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      checkIn(input.value);
      input.value = "";
      input.focus();
    });

    startCamera(function (code) {
      const now = Date.now();
      if (code === lastCode && now - lastAt < SAME_CODE_PAUSE_MS) {
        return;
      }
      lastCode = code;
      lastAt = now;
      checkIn(code);
    });
  }

  async function startCamera(onCode) {
    const camera = document.getElementById("camera");
    const noCamera = document.getElementById("no-camera");
    if (!("BarcodeDetector" in window) || !navigator.mediaDevices) {
      noCamera.hidden = false;
      return;
    }
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (!formats.includes("qr_code")) {
        throw new Error("no QR codes");
      }
      const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      const video = document.getElementById("camera-video");
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      await video.play();
      camera.hidden = false;
      const scan = async function () {
        try {
          const found = await detector.detect(video);
          if (found.length) {
            onCode(found[0].rawValue);
          }
        } catch (error) {
          // a frame that could not be read: try the next one
        }
        window.setTimeout(scan, 150);
      };
      scan();
    } catch (error) {
      noCamera.hidden = false;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const section = document.getElementById("door");
    if (section) {
      door(section);
    }
  });
})();
