# rejected by: test_parallel_calls_come_apart_by_index, test_interleaved_indexes_come_apart_by_index, test_every_split_of_the_arguments_gives_the_same_call, test_any_fragmentation_and_interleaving_gives_the_same_calls
# Reads delta.tool_calls[0] only, as if one delta held one entry: a call's announcement and first fragment arrive together.
def accumulate_tool_calls(chunks):
    calls, finish_reason, usage = {}, None, None
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish_reason = choice.get("finish_reason") or finish_reason
            parts = (choice.get("delta") or {}).get("tool_calls")
            if parts:
                part = parts[0]
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = part.get("id") or call["id"]
                call["name"] += (part.get("function") or {}).get("name") or ""
                call["arguments"] += (part.get("function") or {}).get("arguments") or ""
    return {"calls": [calls[i] for i in sorted(calls)], "finish_reason": finish_reason, "usage": usage}
