# rejected by: test_each_worker_reads_the_log_once_for_all_its_clients
# Exercise 1's answer again: every client runs its own XREAD BLOCK. Correct, but 1,000
# clients keep 1,000 calls waiting in Redis and each entry is read 1,000 times; and a
# slow client is never dropped, it just holds its connection.
def make_fan_out_app(redis_url, stream, maxlen=1000, buffer=100):
    return make_log_app(redis_url, stream, maxlen)
