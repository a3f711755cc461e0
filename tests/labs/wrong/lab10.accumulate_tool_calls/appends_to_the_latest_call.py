# rejected by: test_interleaved_indexes_come_apart_by_index, test_any_fragmentation_and_interleaving_gives_the_same_calls
# Adds each fragment to the call announced last, as if calls came one after another: interleaved indexes get mixed up.
def accumulate_tool_calls(chunks):
    calls, finish_reason, usage = [], None, None
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish_reason = choice.get("finish_reason") or finish_reason
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                if part.get("id"):
                    calls.append(
                        {"id": part["id"], "name": (part.get("function") or {}).get("name") or "", "arguments": ""}
                    )
                calls[-1]["arguments"] += (part.get("function") or {}).get("arguments") or ""
    return {"calls": calls, "finish_reason": finish_reason, "usage": usage}
