// Orchestrator's browser-side code. Forge loads every file in javascript/ into its page.
// The tab's behaviour arrives with the tab issue; nothing runs yet.
