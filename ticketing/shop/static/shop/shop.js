// The shop's only script: the live seat map, the live booking progress, and the forms that call the JSON API.
// Every POST carries the page's Idempotency-Key, so a double click or a retry after a network error
// gets the first answer again instead of booking (or topping up) twice.
"use strict";

(function () {
  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function postJSON(url, body, idempotencyKey) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
        "Idempotency-Key": idempotencyKey,
      },
      body: JSON.stringify(body),
    });
    return answerOf(response);
  }

  async function getJSON(url) {
    const response = await fetch(url, {
      cache: "no-store",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    return answerOf(response);
  }

  // An API answer: its status, its JSON body (null when it has none) and its Retry-After.
  async function answerOf(response) {
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    return { status: response.status, data: data, retryAfter: response.headers.get("Retry-After") };
  }

  // A page's polling: at most one poll pending, each after() replacing the one scheduled before.
  function poller(poll) {
    let timer = null;
    return {
      after: function (seconds) {
        window.clearTimeout(timer);
        timer = window.setTimeout(poll, seconds * 1000);
      },
      stop: function () {
        window.clearTimeout(timer);
      },
    };
  }

  function show(box, text) {
    box.textContent = text;
    box.hidden = false;
  }

  function hide(box) {
    box.hidden = true;
    box.textContent = "";
  }

  // The message for an answer every form can get: logged out, throttled, or a server error.
  function commonFailure(box, result) {
    if (result.status === 401 || result.status === 403) {
      return box.dataset.login;
    }
    if (result.status === 429) {
      const wait = result.retryAfter ? " (" + result.retryAfter + "s)" : "";
      return box.dataset.throttled + wait;
    }
    return box.dataset.server;
  }

  function detailOf(data) {
    return data && typeof data.detail === "string" ? data.detail : "";
  }

  // --- Seat map ------------------------------------------------------------------------------------

  function seatMap(root) {
    const seats = new Map();
    root.querySelectorAll("button.seat").forEach(function (button) {
      seats.set(Number(button.dataset.seatId), button);
    });
    const words = document.getElementById("status-words").dataset;
    const choice = document.getElementById("choice-text");
    const bookButton = document.getElementById("book");
    const message = document.getElementById("message");
    const maxSeats = Number(root.dataset.maxSeats) || 1;
    const selected = new Set();
    let etag = null;
    let booking = false;
    // Set while a booking's answer was lost (network error, 5xx): the seat may well be held by this very
    // booking, so the map must not drop the choice; pressing the button again replays the same key.
    let unanswered = false;

    function statusWord(status) {
      return { AVAILABLE: words.available, HELD: words.held, SOLD: words.sold }[status];
    }

    function render() {
      const chosen = Array.from(selected).map(function (id) {
        const seat = seats.get(id);
        return seat.dataset.label + " (" + seat.dataset.grade + ", " + seat.dataset.priceText + ")";
      });
      choice.textContent = chosen.length ? choice.dataset.chosen + " " + chosen.join(", ") : choice.dataset.none;
      if (bookButton) {
        bookButton.disabled = booking || chosen.length === 0;
      }
    }

    function setStatus(button, status) {
      const id = Number(button.dataset.seatId);
      if (button.dataset.status === status) {
        return;
      }
      button.dataset.status = status;
      button.classList.remove("available", "held", "sold");
      button.classList.add(status.toLowerCase());
      button.disabled = status !== "AVAILABLE";
      const mark = button.querySelector(".mark");
      mark.textContent = status === "HELD" ? "…" : status === "SOLD" ? "✕" : button.dataset.label.slice(-2);
      button.setAttribute(
        "aria-label",
        [button.dataset.label, button.dataset.grade, button.dataset.priceText, statusWord(status)].join(", ")
      );
      if (status !== "AVAILABLE" && selected.has(id) && !booking && !unanswered) {
        toggle(button);
        show(message, message.dataset.taken);
      }
    }

    function toggle(button) {
      const id = Number(button.dataset.seatId);
      if (selected.has(id)) {
        selected.delete(id);
        button.setAttribute("aria-pressed", "false");
        button.classList.remove("selected");
      } else {
        if (selected.size >= maxSeats) {
          show(message, message.dataset.max);
          return;
        }
        selected.add(id);
        button.setAttribute("aria-pressed", "true");
        button.classList.add("selected");
      }
      render();
    }

    // One tab stop for the whole map (the chosen seat, else the first available); arrows move between seats.
    function enabledSeats(container) {
      return Array.from(container.querySelectorAll("button.seat")).filter(function (button) {
        return !button.disabled;
      });
    }

    function rove(target) {
      seats.forEach(function (button) {
        button.tabIndex = -1;
      });
      if (target) {
        target.tabIndex = 0;
      }
    }

    function keepOneTabStop() {
      const enabled = enabledSeats(root);
      const current = enabled.find(function (button) {
        return button.tabIndex === 0;
      });
      const chosen = enabled.find(function (button) {
        return selected.has(Number(button.dataset.seatId));
      });
      rove(current || chosen || enabled[0]);
    }

    function neighbour(seat, key) {
      if (key === "ArrowLeft" || key === "ArrowRight" || key === "Home" || key === "End") {
        const list = enabledSeats(root);
        const index = list.indexOf(seat);
        return { ArrowLeft: list[index - 1], ArrowRight: list[index + 1], Home: list[0], End: list[list.length - 1] }[key];
      }
      const rows = Array.from(root.querySelectorAll(".row"));
      let row = rows.indexOf(seat.parentElement);
      const column = Array.from(seat.parentElement.querySelectorAll("button.seat")).indexOf(seat);
      for (row += key === "ArrowDown" ? 1 : -1; row >= 0 && row < rows.length; row += key === "ArrowDown" ? 1 : -1) {
        const candidates = enabledSeats(rows[row]);
        if (candidates.length) {
          const all = Array.from(rows[row].querySelectorAll("button.seat"));
          return candidates.reduce(function (best, button) {
            return Math.abs(all.indexOf(button) - column) < Math.abs(all.indexOf(best) - column) ? button : best;
          });
        }
      }
      return null;
    }

    root.querySelector(".rows").addEventListener("keydown", function (event) {
      const seat = event.target.closest("button.seat");
      if (!seat || ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].indexOf(event.key) < 0) {
        return;
      }
      const next = neighbour(seat, event.key);
      event.preventDefault();
      if (next) {
        rove(next);
        next.focus();
      }
    });

    function apply(statuses) {
      const held = new Set(statuses.held);
      const sold = new Set(statuses.sold);
      const left = {};
      seats.forEach(function (button, id) {
        const status = sold.has(id) ? "SOLD" : held.has(id) ? "HELD" : "AVAILABLE";
        setStatus(button, status);
        const grade = button.dataset.grade;
        left[grade] = (left[grade] || 0) + (status === "AVAILABLE" ? 1 : 0);
      });
      root.querySelectorAll("[data-left-grade]").forEach(function (span) {
        span.textContent = String(left[span.dataset.leftGrade] || 0);
      });
      keepOneTabStop();
      render();
    }

    async function poll() {
      try {
        const headers = etag ? { "If-None-Match": etag } : {};
        const response = await fetch(root.dataset.statusesUrl, { headers: headers, cache: "no-store" });
        if (response.status === 200) {
          etag = response.headers.get("ETag");
          apply(await response.json());
        }
      } catch (error) {
        // The next poll tries again; the map stays as it was.
      }
    }

    // A 409 names the seats taken meanwhile (they leave the choice, the rest stays chosen), or else a
    // rule such as the seats-per-user limit refused the booking (its detail says which).
    function conflict(data) {
      const taken = data && Array.isArray(data.seat_ids) ? data.seat_ids.map(Number) : [];
      if (data && data.limit) {
        show(message, message.dataset.limit);
        return;
      }
      if (!taken.length) {
        show(message, message.dataset.refused + " " + detailOf(data));
        return;
      }
      const labels = taken.map(function (id) {
        const seat = seats.get(id);
        if (seat && selected.has(id)) {
          toggle(seat);
        }
        return seat ? seat.dataset.label : String(id);
      });
      show(message, message.dataset.takenSeats + " " + labels.join(", "));
    }

    async function book() {
      hide(message);
      const ids = Array.from(selected).sort(function (a, b) {
        return a - b;
      });
      booking = true;
      render();
      const key = root.dataset.idempotencyKey + "-" + ids.join("-");
      try {
        const result = await postJSON(root.dataset.bookUrl, { seat_ids: ids }, key);
        if (result.status === 202 || result.status === 200) {
          window.location.assign(root.dataset.bookingUrl.replace("/0/", "/" + result.data.id + "/"));
          return;
        }
        if (result.status === 409) {
          conflict(result.data);
          poll();
        } else if (result.status === 403 && root.dataset.queued) {
          // The admission ended: back to the waiting room, which says so.
          window.location.assign(root.dataset.queuePage + "?ended=1");
          return;
        } else if (result.status === 404) {
          show(message, message.dataset.notFound);
        } else if (result.status === 400 || result.status === 422) {
          show(message, message.dataset.refused + " " + (detailOf(result.data) || JSON.stringify(result.data)));
        } else {
          unanswered = result.status >= 500;
          show(message, commonFailure(message, result));
        }
      } catch (error) {
        unanswered = true;
        show(message, message.dataset.network);
      }
      booking = false;
      render();
    }

    seats.forEach(function (button) {
      button.addEventListener("click", function () {
        hide(message);
        unanswered = false;
        toggle(button);
      });
    });
    if (bookButton) {
      bookButton.addEventListener("click", book);
    }
    keepOneTabStop();
    render();
    poll();
    window.setInterval(function () {
      if (!document.hidden) {
        poll();
      }
    }, 2000);
  }

  // --- Sales opening and the waiting room ----------------------------------------------------------

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const pad = function (n) {
      return String(n).padStart(2, "0");
    };
    const days = Math.floor(s / 86400);
    const clock = pad(Math.floor((s % 86400) / 3600)) + ":" + pad(Math.floor((s % 3600) / 60)) + ":" + pad(s % 60);
    return days ? days + "d " + clock : clock;
  }

  function timeOfDay(iso) {
    return new Date(iso).toLocaleTimeString(document.documentElement.lang || undefined, {
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  // Counts down to the opening and reloads the page then, which shows the seat map (or the queue's order).
  function countdown(target, opensAt, onOpen) {
    const opening = Date.parse(opensAt);
    function tick() {
      const left = (opening - Date.now()) / 1000;
      target.textContent = duration(left);
      if (left <= 0) {
        window.clearInterval(timer);
        onOpen();
      }
    }
    const timer = window.setInterval(tick, 1000);
    tick();
  }

  function salesOpening(root) {
    countdown(document.getElementById("countdown"), root.dataset.opensAt, function () {
      window.setTimeout(function () {
        window.location.reload();
      }, 1000);
    });
  }

  function waitingRoom(root) {
    const words = root.dataset;
    const joinButton = document.getElementById("join");
    const place = document.getElementById("queue-place");
    const wait = document.getElementById("queue-wait");
    const message = document.getElementById("queue-message");
    const map = document.getElementById("seatmap");
    const fallbackSeconds = 3; // only when an answer does not say (a network error, a server error)
    let first = null; // the first place seen, to measure how fast the line moves
    let mapStarted = false;
    const again = poller(status).after;

    // The wait: from the line's measured movement once it moved, else from the admission rate
    // (at most active-users admitted at once, each for at most admission-seconds).
    function estimate(position) {
      const now = Date.now();
      if (first === null || position > first.position) {
        first = { position: position, at: now };
      }
      const moved = first.position - position;
      const perSecond =
        moved > 0
          ? moved / ((now - first.at) / 1000)
          : Number(words.activeUsers) / Number(words.admissionSeconds);
      const seconds = position / perSecond;
      return seconds < 60 ? words.underMinute : words.minutes.replace("{n}", String(Math.ceil(seconds / 60)));
    }

    function showPlace(data) {
      hide(message);
      if (joinButton) {
        joinButton.hidden = true;
      }
      if (data.admitted) {
        show(place, words.admitted + " " + timeOfDay(data.admitted_until) + ".");
        place.classList.add("admitted");
        hide(wait);
        map.hidden = false;
        if (!mapStarted) {
          mapStarted = true;
          seatMap(map);
          // Presence: the person is on the seat map, so the admission gets its full time (an admission
          // nobody uses ends after a short first window).
          postJSON(words.queueUrl, {}, "queue-presence-" + Date.now());
        }
        return;
      }
      if (data.position === null) {
        show(place, words.preQueue);
        if (data.opens_at) {
          show(wait, words.opensIn + " " + duration((Date.parse(data.opens_at) - Date.now()) / 1000));
        }
      } else {
        show(place, words.position + " " + data.position);
        show(wait, words.wait + " " + estimate(data.position));
      }
      // The server sets the pace: later the further back one is; asking later never costs the place.
      again(Number(data.poll_after_seconds) || fallbackSeconds);
    }

    async function answer(request) {
      try {
        const result = await request();
        if (result.status === 200) {
          showPlace(result.data);
        } else if (result.status === 404) {
          // Not in the line (never joined, or the admission ended): offer to join.
          hide(message);
          if (joinButton) {
            joinButton.hidden = false;
            joinButton.disabled = false;
          }
        } else if (result.status === 503 || result.status === 429) {
          const seconds = Number(result.retryAfter) || 5;
          show(message, words.unavailable.replace("{n}", String(seconds)));
          if (joinButton) {
            joinButton.disabled = false;
          }
          again(seconds);
        } else {
          show(message, words.server);
          again(fallbackSeconds * 2);
        }
      } catch (error) {
        show(message, words.network);
        again(fallbackSeconds * 2);
      }
    }

    function status() {
      return answer(function () {
        return getJSON(words.queueUrl);
      });
    }

    if (joinButton) {
      joinButton.addEventListener("click", function () {
        joinButton.disabled = true;
        answer(function () {
          return postJSON(words.queueUrl, {}, "queue-join-" + Date.now());
        });
      });
    }
    if (words.authenticated === "true") {
      status();
    }
  }

  // --- Booking progress ----------------------------------------------------------------------------

  function bookingPage(root) {
    const progress = document.getElementById("progress");
    const pollMessage = document.getElementById("poll-message");
    const cancelButton = document.getElementById("cancel");
    const message = document.getElementById("message");
    const polling = poller(poll);
    let delay = 1; // seconds, doubled up to 5 while the answers fail

    function terminal() {
      const current = progress.querySelector(".progress");
      return current && current.dataset.terminal === "true";
    }

    function schedule() {
      if (terminal()) {
        polling.stop();
      } else {
        polling.after(delay);
      }
    }

    async function poll() {
      try {
        const result = await getJSON(root.dataset.statusUrl);
        if (result.status === 200 && result.data) {
          progress.innerHTML = result.data.html;
          hide(pollMessage);
          delay = 1;
          if (cancelButton && result.data.status !== "PENDING" && result.data.status !== "CONFIRMED") {
            cancelButton.hidden = true;
          }
        } else {
          delay = Math.min(delay * 2, 5);
        }
      } catch (error) {
        show(pollMessage, root.dataset.reconnecting);
        delay = Math.min(delay * 2, 5);
      }
      schedule();
    }

    async function cancel() {
      if (!window.confirm(cancelButton.dataset.confirm)) {
        return;
      }
      hide(message);
      cancelButton.disabled = true;
      try {
        const result = await postJSON(cancelButton.dataset.cancelUrl, {}, cancelButton.dataset.idempotencyKey);
        if (result.status === 200) {
          cancelButton.hidden = true;
          progress.querySelector(".progress").dataset.terminal = "false";
          poll();
          return;
        }
        if (result.status === 409) {
          show(message, message.dataset.conflict + " " + detailOf(result.data));
        } else {
          show(message, commonFailure(message, result));
        }
      } catch (error) {
        show(message, message.dataset.network);
      }
      cancelButton.disabled = false;
    }

    if (cancelButton) {
      cancelButton.addEventListener("click", cancel);
    }
    schedule();
  }

  // --- Waiting list --------------------------------------------------------------------------------

  function waitlistForm(root) {
    const form = document.getElementById("waitlist-form");
    const message = document.getElementById("waitlist-message");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const body = {
        grade: document.getElementById("waitlist-grade").value,
        seats: Number(document.getElementById("waitlist-seats").value),
      };
      try {
        // The API keeps the place of a repeat, so the key only has to be a fresh one.
        const result = await postJSON(root.dataset.joinUrl, body, "waitlist-" + body.grade + "-" + Date.now());
        if (result.status === 201 || result.status === 200) {
          show(message, message.dataset.position + " " + result.data.position);
        } else if (result.status === 409 || result.status === 400) {
          show(message, message.dataset.refused + " " + (detailOf(result.data) || JSON.stringify(result.data)));
        } else {
          show(message, commonFailure(message, result));
        }
      } catch (error) {
        show(message, message.dataset.network);
      }
    });
  }

  function offerButtons(buttons) {
    const message = document.getElementById("message");
    buttons.forEach(function (button) {
      button.addEventListener("click", async function () {
        hide(message);
        button.disabled = true;
        try {
          const result = await postJSON(button.dataset.acceptUrl, {}, button.dataset.idempotencyKey);
          if (result.status === 202) {
            window.location.assign(button.dataset.bookingUrl.replace("/0/", "/" + result.data.id + "/"));
            return;
          }
          show(message, result.status === 409 ? message.dataset.refused + " " + detailOf(result.data) : commonFailure(message, result));
        } catch (error) {
          show(message, message.dataset.network);
        }
        button.disabled = false;
      });
    });
  }

  // --- Wallet --------------------------------------------------------------------------------------

  function topUpForm(form) {
    const message = document.getElementById("message");
    const input = document.getElementById("amount");
    const button = form.querySelector("button[type=submit]");

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      hide(message);
      const raw = input.value.trim();
      // The API decides what a valid amount is; the page only sends a number when it reads as one.
      const amount = /^[0-9]+$/.test(raw) ? Number(raw) : raw;
      button.disabled = true;
      try {
        const result = await postJSON(form.dataset.chargeUrl, { amount: amount }, form.dataset.idempotencyKey + "-" + raw);
        if (result.status === 200) {
          window.location.reload();
          return;
        }
        show(message, result.status === 400 ? message.dataset.invalid : commonFailure(message, result));
      } catch (error) {
        show(message, message.dataset.network);
      }
      button.disabled = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const map = document.getElementById("seatmap");
    if (map && !map.dataset.queued) {
      seatMap(map);
    }
    const room = document.getElementById("waiting-room");
    if (room) {
      waitingRoom(room);
    }
    const opening = document.getElementById("sales-opening");
    if (opening) {
      salesOpening(opening);
    }
    const booking = document.getElementById("booking");
    if (booking) {
      bookingPage(booking);
    }
    const waitlist = document.getElementById("waitlist-form");
    if (waitlist) {
      waitlistForm(document.getElementById("waitlist"));
    }
    const offers = document.querySelectorAll(".accept-offer");
    if (offers.length) {
      offerButtons(offers);
    }
    const print = document.getElementById("print");
    if (print) {
      print.addEventListener("click", function () {
        window.print();
      });
    }
    const topUp = document.getElementById("top-up");
    if (topUp) {
      topUpForm(topUp);
    }
  });
})();
