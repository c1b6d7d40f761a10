// Orchestrator's browser-side code. Forge loads every file in javascript/ into its page.

// The batch Run button: give the run a Forge task id and follow it with Forge's own progress bar and
// live preview, as txt2img's submit() does. The first input is the hidden task textbox. Outside Forge
// (no requestProgress) the run still gets an id, and only the streamed status line shows progress.
function orchestrator_batch_submit() {
    var args = Array.prototype.slice.call(arguments);
    var id = typeof randomId === "function" ? randomId()
        : "task(orchestrator-" + Math.random().toString(36).slice(2, 9) + ")";
    if (typeof requestProgress === "function" && typeof gradioApp === "function") {
        var app = gradioApp();
        requestProgress(id, app.getElementById("orchestrator_batch_gallery_container"),
            app.getElementById("orchestrator_batch_gallery"), function() {});
    }
    args[0] = id;
    return args;
}
