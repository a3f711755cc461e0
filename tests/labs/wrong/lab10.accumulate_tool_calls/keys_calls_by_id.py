# rejected by: test_one_streamed_call_is_put_back_together, test_parallel_calls_come_apart_by_index, test_interleaved_indexes_come_apart_by_index, test_every_split_of_the_arguments_gives_the_same_call, test_any_fragmentation_and_interleaving_gives_the_same_calls
# Keys calls by id, but only a call's first entry carries one: every later fragment lands under None.
def accumulate_tool_calls(chunks):
    calls, finish_reason, usage = {}, None, None
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish_reason = choice.get("finish_reason") or finish_reason
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(part.get("id"), {"id": part.get("id") or "", "name": "", "arguments": ""})
                call["name"] += (part.get("function") or {}).get("name") or ""
                call["arguments"] += (part.get("function") or {}).get("arguments") or ""
    return {"calls": [c for key, c in calls.items() if key is not None], "finish_reason": finish_reason, "usage": usage}
