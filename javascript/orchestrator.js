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
