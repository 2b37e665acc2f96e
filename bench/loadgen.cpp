// bench_loadgen: HTTP/1.1 load generator for the benchmark (one thread, one
// coroutine per keep-alive connection, loopback only).
//
//   closed  C connections, each sends its next request as soon as the last
//           answer ended (throughput at a given concurrency).
//   open    wrk2-style fixed rate R over C connections: request k of
//           connection i is due at t0 + (k*C + i)/R; latency runs from that
//           due time, not from when it was sent, so a stall counts against
//           every request it delays (no coordinated omission).
//   hold    opens C streams, waits until each has its first event, samples
//           --pid's memory, then closes them all (RSS with C open streams).
//   idle    sends nothing: samples --pid's memory (RSS before any load).
//
// --stream parses SSE: time to first event and the gap between events.
// --pid samples /proc/PID (CPU time, VmRSS every 100 ms, VmHWM) over the
// measured window. Prints one CSV (or JSON) line on stdout; --csv-header
// prints the column names.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include "histogram.hpp"
#include "http_lite.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

enum class mode_type { closed, open, hold, idle };

struct options {
    std::string host;
    unsigned short port = 0;
    std::string path;
    std::string body;
    std::vector<std::string> headers;
    bool sdk_headers = false;  // the head the openai npm SDK sends, not the 4 fields a request needs
    mode_type mode = mode_type::closed;
    unsigned concurrency = 1;
    double rate = 0.0;
    double duration_s = 5.0;
    double warmup_s = 0.5;
    std::uint64_t max_requests = 0;  // stop after this many answers, ok or not; 0: no limit (closed mode)
    bool stream = false;
    long pid = 0;
    long fake_pid = 0;
    std::string tag;
    bool json = false;
    double timeout_s = 30.0;      // one request, or one gap between reads of a stream
    double hold_timeout_s = 60.0; // hold: all streams open within this
    double grace_s = 10.0;        // after the window, in-flight requests get this long to end
};

// ---- /proc sampling ---------------------------------------------------------

struct proc_sample {
    bool ok = false;
    // On-CPU time of all threads: the scheduler's own count when the kernel
    // gives it (run_ns), else utime + stime.
    double cpu_s = 0.0;
    bool cpu_exact = false;   // cpu_s is the scheduler's count
    double tick_cpu_s = 0.0;  // utime + stime, counted in clock ticks (10 ms)
    double sys_s = 0.0;       // stime alone: the kernel's share (system calls, loopback delivery)
    long rss_kb = 0;
    long hwm_kb = 0;
};

// The nanoseconds each thread of `base` (/proc/PID) has run, summed: the first
// field of /proc/PID/task/TID/schedstat, which the scheduler keeps exactly,
// where utime and stime move by whole 10 ms ticks, so that a window of 125
// streams of about 1 ms of CPU each was 12 or 13 ticks (a figure that moved by
// 8% with one tick). A thread that ends inside the window takes its time with
// it (the paths measured keep theirs for their life).
std::optional<double> run_seconds(const std::string& base) {
    std::error_code ec;
    double total_ns = 0;
    bool any = false;
    for (const auto& task : std::filesystem::directory_iterator(base + "/task", ec)) {
        std::ifstream file(task.path() / "schedstat");
        unsigned long long ns = 0;
        if (file >> ns) {
            total_ns += static_cast<double>(ns);
            any = true;
        }
    }
    if (ec || !any) {
        return std::nullopt;
    }
    return total_ns / 1e9;
}

proc_sample sample_proc(long pid) {
    proc_sample out;
    if (pid <= 0) {
        return out;
    }
    const std::string base = "/proc/" + std::to_string(pid);
    std::ifstream stat_file(base + "/stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos) {
        return out;
    }
    std::istringstream fields(stat.substr(paren + 2));
    std::vector<std::string> f;
    for (std::string v; fields >> v && f.size() < 14;) {
        f.push_back(v);
    }
    if (f.size() < 13) {
        return out;
    }
    // After "pid (comm) ": state is field 3 of proc(5), utime 14, stime 15.
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    out.tick_cpu_s = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    out.sys_s = std::stod(f[12]) / ticks;
    const auto exact = run_seconds(base);
    out.cpu_exact = exact.has_value();
    out.cpu_s = exact.value_or(out.tick_cpu_s);
    std::ifstream status(base + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) {
            out.rss_kb = std::stol(line.substr(6));
        } else if (line.starts_with("VmHWM:")) {
            out.hwm_kb = std::stol(line.substr(6));
        }
    }
    out.ok = true;
    return out;
}

// ---- SSE event scanner ------------------------------------------------------

// Finds the ends of SSE events (a blank line) across arbitrary slices and
// tells whether each was a stream's last: chat's "data: [DONE]", or the
// Responses API's response.completed / response.incomplete event.
class sse_scanner {
public:
    template <class OnEvent>
    void feed(std::string_view data, OnEvent&& on_event) {
        for (const char c : data) {
            if (c == '\r') {
                continue;
            }
            if (c == '\n') {
                if (previous_newline_) {
                    if (prefix_len_ > 0) {
                        const std::string_view prefix(prefix_, prefix_len_);
                        on_event(prefix == "data: [DONE]" || prefix.starts_with("event: response.completed") ||
                                 prefix.starts_with("event: response.incomplete"));
                    }
                    prefix_len_ = 0;
                    previous_newline_ = false;
                } else {
                    previous_newline_ = true;
                }
                continue;
            }
            previous_newline_ = false;
            if (prefix_len_ < sizeof prefix_) {
                prefix_[prefix_len_++] = c;
            }
        }
    }

private:
    char prefix_[32]{};  // the event's first bytes (line breaks left out)
    std::size_t prefix_len_ = 0;
    bool previous_newline_ = false;
};

// ---- shared run state -------------------------------------------------------

struct connection;

struct run_state {
    explicit run_state(asio::io_context& io_context) : io(io_context) {}
    asio::io_context& io;
    options opt;
    std::string request;  // prebuilt request bytes
    tcp::endpoint endpoint;
    clock_type::time_point t0;             // start of warm-up; open-loop schedule origin
    clock_type::time_point measure_start;  // end of warm-up
    clock_type::time_point deadline;       // end of the window: no new request starts after it
    clock_type::time_point hard_stop;      // deadline + grace: everything is cut
    clock_type::time_point last_recorded{};  // end of the last recorded answer (--requests runs end early)
    bench::histogram latency;
    bench::histogram ttfb;
    bench::histogram gap;
    std::uint64_t recorded = 0;
    std::uint64_t errors = 0;
    std::uint64_t events = 0;
    std::uint64_t status_errors = 0;
    std::uint64_t short_streams = 0;
    std::uint64_t io_errors = 0;
    unsigned workers_running = 0;
    unsigned open_streams = 0;  // hold mode: streams that got their first event
    bool stop = false;
    proc_sample cpu_start, cpu_end, fake_start, fake_end;
    long rss_max_kb = 0;
    long rss_start_kb = 0;
    bool measuring_started = false;
    std::vector<connection*> connections;  // closed/open mode, by worker index, for the watchdog
};

struct connection {
    explicit connection(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::vector<char> buf = std::vector<char>(16 * 1024);
    std::size_t begin = 0;
    std::size_t end = 0;
    bool busy = false;
    clock_type::time_point last_progress{};
    std::uint64_t reads = 0;  // reads that returned bytes: events completed by one read arrived together

    asio::awaitable<bool> read_more() {
        if (begin == end) {
            begin = end = 0;
        } else if (end == buf.size()) {
            std::memmove(buf.data(), buf.data() + begin, end - begin);
            end -= begin;
            begin = 0;
            if (end == buf.size()) {
                buf.resize(buf.size() * 2);
            }
        }
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf.data() + end, buf.size() - end), as_result);
        if (ec || n == 0) {
            co_return false;
        }
        end += n;
        ++reads;
        last_progress = clock_type::now();
        co_return true;
    }
};

std::uint64_t ns_between(clock_type::time_point a, clock_type::time_point b) {
    return b <= a ? 0 : static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

struct response_result {
    bool ok = false;         // whole answer read, connection usable
    bool keep_alive = true;  // false when the server will close
    int status = 0;
    bool saw_done = false;
};

// Reads one answer. `on_event(now, is_done)` is called at the end of each SSE
// event when `stream` is set. Content-Length, chunked and close-delimited bodies.
template <class OnEvent>
asio::awaitable<response_result> read_response(connection& c, bool stream, OnEvent&& on_event) {
    response_result r;
    std::size_t head_size = 0;
    while ((head_size = bench::find_head_end({c.buf.data() + c.begin, c.end - c.begin})) == 0) {
        if (c.end - c.begin > 1024 * 1024 || !co_await c.read_more()) {
            co_return r;
        }
    }
    bench::head_info head;
    if (!bench::parse_head({c.buf.data() + c.begin, head_size}, false, head)) {
        co_return r;
    }
    c.begin += head_size;
    r.status = head.status;
    r.keep_alive = !head.close;
    sse_scanner scanner;
    auto consume = [&](std::string_view data) {
        if (stream) {
            scanner.feed(data, [&](bool done) {
                if (done) {
                    r.saw_done = true;
                }
                on_event(clock_type::now(), done);
            });
        }
    };
    if (head.status == 204 || head.status == 304 || (head.status >= 100 && head.status < 200)) {
        r.ok = head.status >= 200;
        co_return r;
    }
    if (head.chunked) {
        bench::chunked_decoder decoder;
        for (;;) {
            const auto used = decoder.feed({c.buf.data() + c.begin, c.end - c.begin}, consume);
            if (!used) {
                co_return r;
            }
            c.begin += *used;
            if (decoder.done()) {
                break;
            }
            if (!co_await c.read_more()) {
                co_return r;
            }
        }
    } else if (head.content_length) {
        std::uint64_t remaining = *head.content_length;
        for (;;) {
            const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, c.end - c.begin));
            consume({c.buf.data() + c.begin, take});
            c.begin += take;
            remaining -= take;
            if (remaining == 0) {
                break;
            }
            if (!co_await c.read_more()) {
                co_return r;
            }
        }
    } else {
        // Close-delimited.
        consume({c.buf.data() + c.begin, c.end - c.begin});
        c.begin = c.end;
        while (co_await c.read_more()) {
            consume({c.buf.data() + c.begin, c.end - c.begin});
            c.begin = c.end;
        }
        r.keep_alive = false;
    }
    r.ok = true;
    co_return r;
}

asio::awaitable<bool> connect(run_state& s, connection& c) {
    boost::system::error_code ignored;
    c.socket.close(ignored);
    c.begin = c.end = 0;
    for (int attempt = 0; attempt < 1000 && !s.stop && clock_type::now() < s.hard_stop; ++attempt) {
        c.busy = true;
        c.last_progress = clock_type::now();
        auto [ec] = co_await c.socket.async_connect(s.endpoint, as_result);
        c.busy = false;
        if (!ec) {
            c.socket.set_option(tcp::no_delay(true), ignored);
            co_return true;
        }
        c.socket.close(ignored);
        asio::steady_timer pause(s.io, std::chrono::milliseconds(20));
        co_await pause.async_wait(as_result);
    }
    co_return false;
}

// One keep-alive connection of the closed or open loop.
asio::awaitable<void> worker(run_state& s, unsigned index) {
    auto c = std::make_unique<connection>(s.io);
    s.connections[index] = c.get();
    const auto& opt = s.opt;
    const double period_s = opt.mode == mode_type::open ? 1.0 / opt.rate : 0.0;
    asio::steady_timer timer(s.io);
    bool connected = false;
    for (std::uint64_t k = 0; k < 100'000'000 && !s.stop; ++k) {
        clock_type::time_point start;
        if (opt.mode == mode_type::open) {
            const double due_s = (static_cast<double>(k) * opt.concurrency + index) * period_s;
            start = s.t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(due_s));
            if (start >= s.deadline) {
                break;
            }
            if (clock_type::now() < start) {
                timer.expires_at(start);
                co_await timer.async_wait(as_result);
            }
        } else {
            start = clock_type::now();
            // --requests N: N answers, successful or not (a refused load ends too).
            if (start >= s.deadline || (opt.max_requests > 0 && s.recorded + s.errors >= opt.max_requests)) {
                break;
            }
        }
        if (!connected) {
            if (!co_await connect(s, *c)) {
                ++s.io_errors;
                break;
            }
            connected = true;
        }
        const bool record = start >= s.measure_start && start < s.deadline;
        c->busy = true;
        c->last_progress = clock_type::now();
        auto [wec, wn] = co_await asio::async_write(c->socket, asio::buffer(s.request), as_result);
        (void)wn;
        response_result r;
        bool first_event = true;
        clock_type::time_point previous_event{};
        std::uint64_t previous_read = 0;
        if (!wec) {
            r = co_await read_response(*c, opt.stream, [&](clock_type::time_point now, bool done) {
                if (done) {
                    return;
                }
                // A gap is the wait between two deliveries: events completed
                // by the same read reached the client together, so only the
                // first of them ends a gap. A proxy that answers one upstream
                // event with two (OpenAI's usage chunk on its own after the
                // finish chunk, written together) is then measured over as
                // many gaps as the upstream made, not credited a zero gap.
                const bool same_delivery = !first_event && c->reads == previous_read;
                if (record) {
                    ++s.events;
                    if (first_event) {
                        s.ttfb.record(ns_between(start, now));
                    } else if (!same_delivery) {
                        s.gap.record(ns_between(previous_event, now));
                    }
                }
                first_event = false;
                if (!same_delivery) {
                    previous_event = now;
                }
                previous_read = c->reads;
            });
        }
        c->busy = false;
        const auto finished = clock_type::now();
        const bool ok = !wec && r.ok && r.status >= 200 && r.status < 300 && (!opt.stream || r.saw_done);
        if (record) {
            if (ok) {
                s.latency.record(ns_between(start, finished));
                ++s.recorded;
                s.last_recorded = std::max(s.last_recorded, finished);
            } else {
                ++s.errors;
                if (wec || !r.ok) {
                    ++s.io_errors;
                } else if (r.status < 200 || r.status >= 300) {
                    ++s.status_errors;
                } else {
                    ++s.short_streams;
                }
            }
        }
        if (wec || !r.ok || !r.keep_alive) {
            connected = false;
            if (wec || !r.ok) {
                // Do not spin on a peer that fails at once.
                timer.expires_after(std::chrono::milliseconds(5));
                co_await timer.async_wait(as_result);
            }
        }
    }
    boost::system::error_code ignored;
    c->socket.close(ignored);
    s.connections[index] = nullptr;
    --s.workers_running;
}

// hold mode: one stream kept open until told to stop.
asio::awaitable<void> holder(run_state& s, unsigned) {
    auto c = std::make_unique<connection>(s.io);
    bool counted = false;
    if (co_await connect(s, *c)) {
        c->busy = true;
        c->last_progress = clock_type::now();
        auto [wec, wn] = co_await asio::async_write(c->socket, asio::buffer(s.request), as_result);
        (void)wn;
        if (!wec) {
            // Returns when the stream ends or the socket is closed by stop.
            auto stop_watch = [&](clock_type::time_point, bool) {
                if (!counted) {
                    counted = true;
                    ++s.open_streams;
                }
            };
            (void)co_await read_response(*c, true, stop_watch);
        }
        c->busy = false;
    }
    if (!counted) {
        ++s.errors;
    } else if (!s.stop) {
        ++s.short_streams;  // ended before we let go
    }
    boost::system::error_code ignored;
    c->socket.close(ignored);
    --s.workers_running;
}

asio::awaitable<void> sleep_for(asio::io_context& io, std::chrono::milliseconds d) {
    asio::steady_timer t(io, d);
    co_await t.async_wait(as_result);
}

// Samples the watched process every 100 ms, and ends the run.
asio::awaitable<void> supervisor(run_state& s) {
    const auto& opt = s.opt;
    for (int i = 0; i < 1'000'000 && clock_type::now() < s.measure_start; ++i) {
        co_await sleep_for(s.io, std::chrono::milliseconds(1));
    }
    s.cpu_start = sample_proc(opt.pid);
    s.fake_start = sample_proc(opt.fake_pid);
    s.rss_start_kb = s.cpu_start.rss_kb;
    s.rss_max_kb = s.cpu_start.rss_kb;
    s.measuring_started = true;
    for (int i = 0; i < 10'000'000 && s.workers_running > 0; ++i) {
        co_await sleep_for(s.io, std::chrono::milliseconds(100));
        const auto now = clock_type::now();
        if (opt.pid > 0) {
            s.rss_max_kb = std::max(s.rss_max_kb, sample_proc(opt.pid).rss_kb);
        }
        if (now >= s.hard_stop) {
            s.stop = true;
            break;
        }
    }
    s.cpu_end = sample_proc(opt.pid);
    s.fake_end = sample_proc(opt.fake_pid);
    if (s.cpu_end.ok) {
        s.rss_max_kb = std::max(s.rss_max_kb, s.cpu_end.rss_kb);
    }
    s.stop = true;
    s.io.stop();  // cuts whatever is still pending past the grace time
}

asio::awaitable<void> hold_run(run_state& s) {
    const auto& opt = s.opt;
    s.rss_start_kb = sample_proc(opt.pid).rss_kb;
    s.fake_start = sample_proc(opt.fake_pid);
    s.cpu_start = sample_proc(opt.pid);
    // Open the streams 64 connection attempts at a time.
    unsigned launched = 0;
    const auto give_up = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                                   std::chrono::duration<double>(opt.hold_timeout_s));
    for (int i = 0; i < 10'000'000 && clock_type::now() < give_up; ++i) {
        while (launched < opt.concurrency && launched - s.open_streams - s.errors < 64) {
            ++s.workers_running;
            asio::co_spawn(s.io, holder(s, launched), asio::detached);
            ++launched;
        }
        if (s.open_streams + s.errors >= opt.concurrency) {
            break;
        }
        co_await sleep_for(s.io, std::chrono::milliseconds(2));
    }
    co_await sleep_for(s.io, std::chrono::milliseconds(500));  // let allocations settle
    const auto held = sample_proc(opt.pid);
    s.cpu_end = held;
    s.fake_end = sample_proc(opt.fake_pid);
    s.rss_max_kb = held.rss_kb;
    s.recorded = s.open_streams;
    s.stop = true;
    s.io.stop();  // closes every stream: sockets die with the process
}

// Cancels requests that made no progress for --timeout seconds (the worker
// counts an error and reconnects).
asio::awaitable<void> watchdog(run_state& s) {
    const auto limit = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s.opt.timeout_s));
    for (int i = 0; i < 100'000'000 && !s.stop && s.workers_running > 0; ++i) {
        co_await sleep_for(s.io, std::chrono::milliseconds(100));
        const auto now = clock_type::now();
        for (auto* c : s.connections) {
            if (c != nullptr && c->busy && now - c->last_progress > limit) {
                boost::system::error_code ignored;
                c->socket.cancel(ignored);
            }
        }
    }
}

[[noreturn]] void usage(const std::string& message) {
    std::cerr << "bench_loadgen: " << message << "\n"
              << "usage: bench_loadgen --url http://127.0.0.1:PORT/PATH [--body FILE] [--header 'K: V']... [--sdk-headers]\n"
                 "         [--mode closed|open|hold|idle] [--concurrency C] [--rate R] [--duration S]\n"
                 "         [--warmup S] [--requests N] [--stream] [--pid PID] [--fake-pid PID]\n"
                 "         [--tag TEXT] [--json] [--timeout S] [--hold-timeout S]\n"
                 "       bench_loadgen --csv-header\n";
    std::exit(2);
}

constexpr std::string_view csv_columns =
    "mode,concurrency,rate,window_s,requests,errors,rps,lat_p50_us,lat_p90_us,lat_p99_us,lat_p999_us,lat_max_us,"
    "lat_mean_us,ttfb_p50_us,ttfb_p99_us,gap_mean_us,gap_p50_us,gap_p99_us,gap_max_us,events,cpu_s,cpu_us_per_req,"
    "rss_start_kb,rss_max_kb,hwm_kb,fake_cpu_us_per_req,status_errors,io_errors,short_streams,sys_us_per_req";

options parse_args(int argc, char** argv) {
    options o;
    std::string url;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage("missing value for " + std::string(arg));
            }
            return argv[++i];
        };
        auto number = [&]() -> double {
            const auto text = value();
            try {
                std::size_t used = 0;
                const double v = std::stod(text, &used);
                if (used != text.size() || v < 0) {
                    usage("bad number " + text);
                }
                return v;
            } catch (const std::exception&) {
                usage("bad number " + text);
            }
        };
        if (arg == "--csv-header") {
            std::cout << "round,path,scenario," << csv_columns << "\n";
            std::exit(0);
        } else if (arg == "--url") {
            url = value();
        } else if (arg == "--body") {
            std::ifstream in(value(), std::ios::binary);
            if (!in) {
                usage("cannot read body file");
            }
            o.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        } else if (arg == "--header") {
            o.headers.push_back(value());
        } else if (arg == "--sdk-headers") {
            o.sdk_headers = true;
        } else if (arg == "--mode") {
            const auto m = value();
            if (m == "closed") {
                o.mode = mode_type::closed;
            } else if (m == "open") {
                o.mode = mode_type::open;
            } else if (m == "hold") {
                o.mode = mode_type::hold;
            } else if (m == "idle") {
                o.mode = mode_type::idle;
            } else {
                usage("unknown mode " + m);
            }
        } else if (arg == "--concurrency") {
            o.concurrency = static_cast<unsigned>(std::clamp(number(), 1.0, 20000.0));
        } else if (arg == "--rate") {
            o.rate = std::min(number(), 10'000'000.0);
        } else if (arg == "--duration") {
            o.duration_s = std::clamp(number(), 0.01, 3600.0);
        } else if (arg == "--warmup") {
            o.warmup_s = std::min(number(), 600.0);
        } else if (arg == "--requests") {
            o.max_requests = static_cast<std::uint64_t>(number());
        } else if (arg == "--stream") {
            o.stream = true;
        } else if (arg == "--pid") {
            o.pid = static_cast<long>(number());
        } else if (arg == "--fake-pid") {
            o.fake_pid = static_cast<long>(number());
        } else if (arg == "--tag") {
            o.tag = value();
        } else if (arg == "--json") {
            o.json = true;
        } else if (arg == "--timeout") {
            o.timeout_s = std::clamp(number(), 0.01, 3600.0);
        } else if (arg == "--hold-timeout") {
            o.hold_timeout_s = std::clamp(number(), 0.1, 3600.0);
        } else if (arg == "--grace") {
            o.grace_s = std::clamp(number(), 0.0, 3600.0);
        } else {
            usage("unknown option " + std::string(arg));
        }
    }
    constexpr std::string_view scheme = "http://";
    if (!url.starts_with(scheme)) {
        usage("--url http://127.0.0.1:PORT/PATH is required");
    }
    const auto rest = std::string_view(url).substr(scheme.size());
    const auto slash = rest.find('/');
    const auto authority = rest.substr(0, slash);
    o.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    const auto colon = authority.rfind(':');
    if (colon == std::string_view::npos) {
        usage("the URL needs a port");
    }
    o.host = std::string(authority.substr(0, colon));
    const auto port = bench::parse_number<unsigned short>(authority.substr(colon + 1));
    if (!port || *port == 0) {
        usage("bad port");
    }
    o.port = *port;
    if (!o.host.starts_with("127.")) {
        usage("loopback addresses only (127.x.x.x)");
    }
    if (o.mode == mode_type::open && o.rate <= 0.0) {
        usage("--mode open needs --rate");
    }
    return o;
}

// The head of each request. With --sdk-headers it is the one the official
// openai npm SDK (6.x on Node 20, through undici's fetch) sends for a chat
// completion, field for field and in its order, 16 fields: what a proxy
// parses and forwards for a real client, where the 4 fields a request needs
// (Host, Authorization, Content-Type, Content-Length) understate it.
std::string build_request(const options& o) {
    const std::string host = o.host + ":" + std::to_string(o.port);
    const bool post = !o.body.empty();
    std::string r = (post ? "POST " : "GET ") + o.path + " HTTP/1.1\r\n";
    if (o.sdk_headers) {
        r += "host: " + host +
             "\r\nconnection: keep-alive\r\naccept: application/json\r\nuser-agent: OpenAI/JS 6.49.0\r\n"
             "x-stainless-retry-count: 0\r\nx-stainless-lang: js\r\nx-stainless-package-version: 6.49.0\r\n"
             "x-stainless-os: Linux\r\nx-stainless-arch: x64\r\nx-stainless-runtime: node\r\n"
             "x-stainless-runtime-version: v20.20.2\r\nauthorization: Bearer bench\r\n";
        for (const auto& h : o.headers) {
            r += h + "\r\n";
        }
        if (post) {
            r += "content-type: application/json\r\n";
        }
        r += "accept-language: *\r\nsec-fetch-mode: cors\r\naccept-encoding: gzip, deflate\r\n";
        if (post) {
            r += "content-length: " + std::to_string(o.body.size()) + "\r\n";
        }
    } else {
        r += "Host: " + host + "\r\nAuthorization: Bearer bench\r\n";
        for (const auto& h : o.headers) {
            r += h + "\r\n";
        }
        if (post) {
            r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(o.body.size()) + "\r\n";
        }
    }
    r += "\r\n";
    r += o.body;
    return r;
}

std::string fmt(double v, int decimals = 1) {
    char out[64];
    std::snprintf(out, sizeof out, "%.*f", decimals, v);
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    asio::io_context io(1);
    run_state s(io);
    s.opt = parse_args(argc, argv);
    const auto& opt = s.opt;
    s.request = build_request(opt);
    s.endpoint = tcp::endpoint(asio::ip::make_address(opt.host), opt.port);

    const auto to_duration = [](double seconds) {
        return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    };
    s.t0 = clock_type::now();
    s.measure_start = s.t0 + to_duration(opt.warmup_s);
    s.deadline = s.measure_start + to_duration(opt.duration_s);
    s.hard_stop = s.deadline + to_duration(opt.grace_s);

    if (opt.mode == mode_type::idle) {
        s.cpu_start = s.cpu_end = sample_proc(opt.pid);
        s.rss_start_kb = s.rss_max_kb = s.cpu_start.rss_kb;
    } else if (opt.mode == mode_type::hold) {
        s.measure_start = s.t0;
        s.deadline = s.t0 + to_duration(opt.hold_timeout_s);
        s.hard_stop = s.deadline + to_duration(opt.grace_s);
        asio::co_spawn(io, hold_run(s), asio::detached);
    } else {
        if (opt.mode == mode_type::open) {
            // The schedule starts now; the first requests are the warm-up.
            s.t0 = clock_type::now();
        }
        s.workers_running = opt.concurrency;
        s.connections.assign(opt.concurrency, nullptr);
        for (unsigned i = 0; i < opt.concurrency; ++i) {
            asio::co_spawn(io, worker(s, i), asio::detached);
        }
        asio::co_spawn(io, supervisor(s), asio::detached);
        asio::co_spawn(io, watchdog(s), asio::detached);
    }
    io.run();

    // A run cut short by --requests is measured up to its last answer.
    const auto window_end = opt.max_requests > 0 && s.recorded + s.errors >= opt.max_requests && s.last_recorded < s.deadline
                                ? s.last_recorded
                                : s.deadline;
    const double window_s = opt.mode == mode_type::hold || opt.mode == mode_type::idle
                                ? 0.0
                                : std::chrono::duration<double>(window_end - s.measure_start).count();
    const double rps = window_s > 0 ? static_cast<double>(s.recorded) / window_s : 0.0;
    const bool cpu_ok = s.cpu_start.ok && s.cpu_end.ok;
    // Both ends exact, or both in ticks: never one of each.
    const auto cpu_between = [](const proc_sample& a, const proc_sample& b) {
        return a.cpu_exact && b.cpu_exact ? b.cpu_s - a.cpu_s : b.tick_cpu_s - a.tick_cpu_s;
    };
    const double cpu_s = cpu_ok ? cpu_between(s.cpu_start, s.cpu_end) : 0.0;
    const double cpu_per_req = cpu_ok && s.recorded > 0 ? cpu_s * 1e6 / static_cast<double>(s.recorded) : 0.0;
    // The kernel's share is known in ticks only: the exact time split in the
    // ticks' proportion.
    const double tick_cpu_s = cpu_ok ? s.cpu_end.tick_cpu_s - s.cpu_start.tick_cpu_s : 0.0;
    const double sys_share = tick_cpu_s > 0 ? (s.cpu_end.sys_s - s.cpu_start.sys_s) / tick_cpu_s : 0.0;
    const double sys_per_req =
        cpu_ok && s.recorded > 0 ? cpu_s * sys_share * 1e6 / static_cast<double>(s.recorded) : 0.0;
    const bool fake_ok = s.fake_start.ok && s.fake_end.ok;
    const double fake_per_req =
        fake_ok && s.recorded > 0 ? cpu_between(s.fake_start, s.fake_end) * 1e6 / static_cast<double>(s.recorded) : 0.0;
    auto us = [](double ns) { return fmt(ns / 1000.0, 1); };
    const char* mode_name = opt.mode == mode_type::closed ? "closed"
                            : opt.mode == mode_type::open ? "open"
                            : opt.mode == mode_type::hold ? "hold"
                                                          : "idle";

    struct column {
        std::string_view name;
        std::string value;
    };
    const std::vector<column> columns = {
        {"mode", mode_name},
        {"concurrency", std::to_string(opt.concurrency)},
        {"rate", fmt(opt.rate, 0)},
        {"window_s", fmt(window_s, 3)},
        {"requests", std::to_string(s.recorded)},
        {"errors", std::to_string(s.errors)},
        {"rps", fmt(rps, 1)},
        {"lat_p50_us", us(s.latency.quantile(0.50))},
        {"lat_p90_us", us(s.latency.quantile(0.90))},
        {"lat_p99_us", us(s.latency.quantile(0.99))},
        {"lat_p999_us", us(s.latency.quantile(0.999))},
        {"lat_max_us", us(static_cast<double>(s.latency.max()))},
        {"lat_mean_us", us(s.latency.mean())},
        {"ttfb_p50_us", us(s.ttfb.quantile(0.50))},
        {"ttfb_p99_us", us(s.ttfb.quantile(0.99))},
        {"gap_mean_us", us(s.gap.mean())},
        {"gap_p50_us", us(s.gap.quantile(0.50))},
        {"gap_p99_us", us(s.gap.quantile(0.99))},
        {"gap_max_us", us(static_cast<double>(s.gap.max()))},
        {"events", std::to_string(s.events)},
        {"cpu_s", cpu_ok ? fmt(cpu_s, 2) : ""},
        {"cpu_us_per_req", cpu_ok && opt.mode != mode_type::hold && opt.mode != mode_type::idle ? fmt(cpu_per_req, 2) : ""},
        {"rss_start_kb", opt.pid > 0 ? std::to_string(s.rss_start_kb) : ""},
        {"rss_max_kb", opt.pid > 0 ? std::to_string(s.rss_max_kb) : ""},
        {"hwm_kb", s.cpu_end.ok ? std::to_string(s.cpu_end.hwm_kb) : ""},
        {"fake_cpu_us_per_req", fake_ok && opt.mode != mode_type::hold && opt.mode != mode_type::idle ? fmt(fake_per_req, 2) : ""},
        {"status_errors", std::to_string(s.status_errors)},
        {"io_errors", std::to_string(s.io_errors)},
        {"short_streams", std::to_string(s.short_streams)},
        {"sys_us_per_req", cpu_ok && opt.mode != mode_type::hold && opt.mode != mode_type::idle ? fmt(sys_per_req, 2) : ""},
    };
    std::string line;
    if (opt.json) {
        line = "{\"tag\":\"" + opt.tag + "\"";
        for (const auto& c : columns) {
            const bool numeric = !c.value.empty() && c.name != "mode";
            line += ",\"" + std::string(c.name) + "\":" + (numeric ? c.value : "\"" + c.value + "\"");
        }
        line += "}";
    } else {
        line = opt.tag.empty() ? ",," : opt.tag;
        for (const auto& c : columns) {
            line += "," + c.value;
        }
    }
    std::cout << line << std::endl;
    std::cerr << "loadgen " << (opt.tag.empty() ? "" : opt.tag + " ") << mode_name << " c=" << opt.concurrency
              << ": " << s.recorded << " ok, " << s.errors << " errors, " << fmt(rps, 0) << " rps, p50 "
              << us(s.latency.quantile(0.5)) << " us, p99 " << us(s.latency.quantile(0.99)) << " us"
              << (opt.stream ? ", ttfb p50 " + us(s.ttfb.quantile(0.5)) + " us, gap mean " + us(s.gap.mean()) + " us" : "")
              << "\n";
    // Coroutines cut by io.stop() still hold sockets and references into `s`:
    // leave without unwinding them.
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(0);
}
