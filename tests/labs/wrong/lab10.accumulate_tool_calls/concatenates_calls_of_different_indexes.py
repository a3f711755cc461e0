# rejected by: test_parallel_calls_come_apart_by_index, test_interleaved_indexes_come_apart_by_index, test_any_fragmentation_and_interleaving_gives_the_same_calls
# One arguments string for the whole reply: two parallel calls' fragments run together into one broken call.
def accumulate_tool_calls(chunks):
    call, finish_reason, usage = {"id": "", "name": "", "arguments": ""}, None, None
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish_reason = choice.get("finish_reason") or finish_reason
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                call["id"] = call["id"] or part.get("id") or ""
                call["name"] = call["name"] or (part.get("function") or {}).get("name") or ""
                call["arguments"] += (part.get("function") or {}).get("arguments") or ""
    return {"calls": [call] if call["id"] else [], "finish_reason": finish_reason, "usage": usage}
