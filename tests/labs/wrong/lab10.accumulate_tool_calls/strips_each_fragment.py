# rejected by: test_every_split_of_the_arguments_gives_the_same_call, test_any_fragmentation_and_interleaving_gives_the_same_calls
# Strips whitespace off each fragment: a fragment that starts or ends with a space inside a string loses it.
def accumulate_tool_calls(chunks):
    calls, finish_reason, usage = {}, None, None
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish_reason = choice.get("finish_reason") or finish_reason
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = part.get("id") or call["id"]
                call["name"] += (part.get("function") or {}).get("name") or ""
                call["arguments"] += ((part.get("function") or {}).get("arguments") or "").strip()
    return {"calls": [calls[i] for i in sorted(calls)], "finish_reason": finish_reason, "usage": usage}
