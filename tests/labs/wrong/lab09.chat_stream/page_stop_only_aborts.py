# rejected by: test_stop_on_the_page_stops_the_model_within_200ms_and_cancels_by_id
# Known error 22: Stop only calls controller.abort(). On a laptop that closes the
# connection and the model stops; through jupyter-server-proxy (Binder) the proxy
# never tells the server the browser left, and the model generates on. Stop must
# also send POST chat/<id>/cancel, a request of its own.
OLD = 'if (generation) fetch("chat/" + encodeURIComponent(generation) + "/cancel", { method: "POST" });'
assert OLD in PAGE
PAGE = PAGE.replace(OLD, "")
