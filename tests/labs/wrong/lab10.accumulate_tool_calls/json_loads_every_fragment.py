# rejected by: test_one_streamed_call_is_put_back_together, test_parallel_calls_come_apart_by_index, test_interleaved_indexes_come_apart_by_index, test_finish_reason_and_the_usage_of_the_empty_choices_chunk_are_kept, test_every_split_of_the_arguments_gives_the_same_call, test_any_fragmentation_and_interleaving_gives_the_same_calls
# Parses each fragment as it comes ("partial JSON won't parse"): a fragment is not JSON, so this raises at once.
import json


def accumulate_tool_calls(chunks):
    calls, finish_reason, usage = {}, None, None
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish_reason = choice.get("finish_reason") or finish_reason
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": {}})
                call["id"] = part.get("id") or call["id"]
                call["name"] += (part.get("function") or {}).get("name") or ""
                fragment = (part.get("function") or {}).get("arguments") or ""
                if fragment:
                    call["arguments"].update(json.loads(fragment))
    return {
        "calls": [{**calls[i], "arguments": json.dumps(calls[i]["arguments"])} for i in sorted(calls)],
        "finish_reason": finish_reason,
        "usage": usage,
    }
