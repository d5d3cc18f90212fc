-- Shared summary: req/s and latency percentiles in one line (loaded with the scenario script).
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_non2xx=%d req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.status, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
