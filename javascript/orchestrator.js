// Orchestrator's browser-side code. Forge loads every file in javascript/ into its page.

// A Run button: give the run a Forge task id and follow it with Forge's own progress bar and live
// preview, as txt2img's submit() does. The first input is the hidden task textbox. Outside Forge (no
// requestProgress) the run still gets an id, and only our status line shows progress.
function orchestrator_submit(prefix, args) {
    var id = typeof randomId === "function" ? randomId()
        : "task(orchestrator-" + Math.random().toString(36).slice(2, 9) + ")";
    if (typeof requestProgress === "function" && typeof gradioApp === "function") {
        var app = gradioApp();
        requestProgress(id, app.getElementById(prefix + "_gallery_container"),
            app.getElementById(prefix + "_gallery"), function() {});
    }
    args[0] = id;
    return args;
}

function orchestrator_batch_submit() {
    return orchestrator_submit("orchestrator_batch", Array.prototype.slice.call(arguments));
}

function orchestrator_swatch_submit() {
    return orchestrator_submit("orchestrator_swatch", Array.prototype.slice.call(arguments));
}

// History keys, active only while the History sub-tab is on screen and no text field has the focus.
// Browse: 1-5 stars, 0 clear, x reject, f favourite, left/right arrow the previous/next image of the gallery.
// Compare: left arrow left is better, right arrow right is better, down arrow or t a tie, s or up arrow skip.
// A key reaches the server through a hidden relay: the key is queued here, the relay's button clicked, and the
// button's js hook (orchestrator_key_args) hands the oldest queued key to the handler as its first input
// (Gradio calls the hooks in the order of the clicks, so keys pressed quickly each reach the right call). A rating
// key also carries the gallery's selected index at the moment it was pressed: the image the user sees selected,
// even when the details of an image just moved to have not come back yet.
var orchestrator_pending_keys = [];
var ORCHESTRATOR_RATING_KEYS = "012345xf";
var ORCHESTRATOR_JUDGE_KEYS = {ArrowLeft: "left", ArrowRight: "right", ArrowDown: "tie", t: "tie", T: "tie",
    ArrowUp: "skip", s: "skip", S: "skip"};
// A judgement is on its way until the counter under the pair or the pair's image changes (the next pair is then
// shown): a second key meanwhile would judge the next pair unseen. Gradio ignores trigger_mode "once" on an
// event with a js hook, so the guard is here.
var orchestrator_judging = null;

function orchestrator_key_args(args) {
    if (orchestrator_pending_keys.length) {
        var pending = orchestrator_pending_keys.shift();
        args[0] = pending.key;
        if (pending.index !== undefined) {
            args[1] = String(pending.index);
        }
    }
    return args;
}

function orchestrator_element(id) {
    var root = typeof gradioApp === "function" ? gradioApp() : document;
    return root.querySelector("#" + id);
}

// On screen: its sub-tab and every tab above it are the selected ones (the others are display: none).
function orchestrator_shown(id) {
    var element = orchestrator_element(id);
    return element !== null && element.getClientRects().length > 0;
}

function orchestrator_send_key(button_id, key, index) {
    var button = orchestrator_element(button_id);
    if (button === null) {
        return false;
    }
    orchestrator_pending_keys.push({key: key, index: index});
    button.click();
    return true;
}

// What the pair's area shows: the counter's own text (not the block's, where Gradio's progress timer counts
// while an event runs) and the left image.
function orchestrator_compare_shown() {
    var counter = orchestrator_element("orchestrator_compare_counter");
    counter = counter === null ? null : (counter.querySelector(".prose") || counter);
    var image = orchestrator_element("orchestrator_compare_left_image");
    image = image === null ? null : image.querySelector("img");
    return (counter === null ? "" : counter.textContent) + "|" + (image === null ? "" : image.src);
}

function orchestrator_judge(outcome) {
    var now = Date.now();
    if (orchestrator_judging !== null && orchestrator_judging.shown === orchestrator_compare_shown() &&
        now - orchestrator_judging.at < 10000) {
        return;  // the last judgement has not come back yet (after 10 s: it failed, keys work again)
    }
    if (orchestrator_send_key("orchestrator_compare_key_send", outcome)) {
        orchestrator_judging = {shown: orchestrator_compare_shown(), at: now};
    }
}

function orchestrator_history_items() {
    var gallery = orchestrator_element("orchestrator_history_gallery");
    return gallery === null ? [] : Array.prototype.slice.call(gallery.querySelectorAll("button.thumbnail-item"));
}

function orchestrator_history_selected(items) {
    return items.findIndex(function(item) { return item.classList.contains("selected"); });
}

function orchestrator_history_step(delta) {
    var items = orchestrator_history_items();
    if (!items.length) {
        return;
    }
    var at = orchestrator_history_selected(items);
    var next = at < 0 ? (delta > 0 ? 0 : items.length - 1) : Math.min(items.length - 1, Math.max(0, at + delta));
    if (next !== at) {
        items[next].click();
        items[next].scrollIntoView({block: "nearest"});
    }
}

function orchestrator_typing(target) {
    if (!target || !target.tagName) {
        return false;
    }
    if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") {
        return true;
    }
    // a radio or a slider uses the arrows itself; a checkbox or a button does not
    return target.tagName === "INPUT" && ["checkbox", "button", "submit"].indexOf(target.type) < 0;
}

document.addEventListener("keydown", function(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing ||
        orchestrator_typing(event.target)) {
        return;
    }
    if (orchestrator_shown("orchestrator_history_compare")) {
        var outcome = ORCHESTRATOR_JUDGE_KEYS[event.key];
        if (outcome) {
            event.preventDefault();
            if (!event.repeat) {
                orchestrator_judge(outcome);
            }
        }
    } else if (orchestrator_shown("orchestrator_history_browse")) {
        if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
            event.preventDefault();
            orchestrator_history_step(event.key === "ArrowLeft" ? -1 : 1);
            return;
        }
        var key = event.key.length === 1 ? event.key.toLowerCase() : "";
        if (key && ORCHESTRATOR_RATING_KEYS.indexOf(key) >= 0) {
            event.preventDefault();
            if (!event.repeat) {
                orchestrator_send_key("orchestrator_history_key_send", key,
                    orchestrator_history_selected(orchestrator_history_items()));
            }
        }
    }
});
