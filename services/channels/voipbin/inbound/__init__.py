"""The VoIPBin voice input channel: the event webhook (`events`) and the `fetch` action
(`fetch`), with call lookups shared by both (`callers`). Design: docs/voice.md."""
