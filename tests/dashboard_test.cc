// The web dashboard (web/, served by resweep-coordinator --http; docs/dashboard.md):
// its files as the coordinator serves them, the API's ETags, and the pages in a real
// browser (Debian's chromium, headless, driven over the DevTools protocol:
// tests/cdp_client.h) against a real coordinator with a sweep in progress. The
// sweep's runs are leased by this test itself, acting as a worker over gRPC, so that
// it decides when each epoch arrives.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "resweep/v1/resweep.grpc.pb.h"
#include "tests/cdp_client.h"
#include "tests/cluster.h"

namespace resweep {
namespace {

using namespace resweep::testing;
using nlohmann::json;

constexpr char kSweep[] = R"(name: dashboard
dataset: {kind: cifar10}
model: {depth_n: 1}
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 4}
grid:
  model.depth_n: [1, 2]
seeds: 4
)";

TEST(Dashboard, FilesAreServedWithTheirTypesAndEtagsAndApiRepliesAnswer304) {
  Cluster cluster({});
  const std::string token_file = cluster.dir() + "/tokens";
  WriteFile(token_file, "admin admintoken0123456789abcdef\nread readtoken0123456789abcdef\n");
  const int port = StartWithHttp(cluster, {"--token-file", token_file});
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);

  // The page and its files need no token (they hold no data); each has its type.
  for (const auto& [path, type] : std::vector<std::pair<std::string, std::string>>{
           {"/", "text/html; charset=utf-8"},
           {"/static/app.js", "text/javascript; charset=utf-8"},
           {"/static/style.css", "text/css; charset=utf-8"},
           {"/static/vendor/dygraph.min.js", "text/javascript; charset=utf-8"},
           {"/static/vendor/LICENSE", "text/plain; charset=utf-8"}}) {
    auto res = http.Get(path.c_str());
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), type) << path;
    const std::string etag = res->get_header_value("ETag");
    EXPECT_FALSE(etag.empty()) << path;
    // The same bytes as the file in web/ (embedded at build time).
    const std::string file =
        path == "/" ? "index.html" : path.substr(std::string("/static/").size());
    EXPECT_EQ(res->body, ReadFile(std::string(RESWEEP_SOURCE_DIR) + "/web/" + file)) << path;
    // Revalidation: the same ETag is a 304 without a body.
    auto again = http.Get(path.c_str(), {{"If-None-Match", etag}});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 304) << path;
    EXPECT_TRUE(again->body.empty()) << path;
  }
  auto missing = http.Get("/static/nothing.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto traversal = http.Get("/static/../CMakeLists.txt");
  ASSERT_TRUE(traversal);
  EXPECT_EQ(traversal->status, 404);

  // The API still needs the token.
  auto refused = http.Get("/api/v1/sweeps");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);

  // API replies carry an ETag; the same ETag is a 304 until the data change.
  const httplib::Headers auth = {{"Authorization", "Bearer readtoken0123456789abcdef"}};
  auto first = http.Get("/api/v1/sweeps", auth);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  const std::string etag = first->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(first->get_header_value("Cache-Control"), "no-cache");
  httplib::Headers conditional = auth;
  conditional.emplace("If-None-Match", etag);
  auto unchanged = http.Get("/api/v1/sweeps", conditional);
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(unchanged->status, 304);
  EXPECT_TRUE(unchanged->body.empty());
  // Lists of ETags, weak comparison, and "*" (RFC 9110).
  httplib::Headers listed = auth;
  listed.emplace("If-None-Match", "\"other\", W/" + etag);
  auto in_list = http.Get("/api/v1/sweeps", listed);
  ASSERT_TRUE(in_list);
  EXPECT_EQ(in_list->status, 304);

  // The CLI takes the admin line of the coordinator's file.
  cluster.set_cli_args({"--token-file", token_file});
  cluster.Cli({"submit", cluster.WriteSweep("s.yaml", kSweep)});
  auto changed = http.Get("/api/v1/sweeps", conditional);
  ASSERT_TRUE(changed);
  EXPECT_EQ(changed->status, 200) << "a new sweep must change the reply";
  EXPECT_NE(changed->get_header_value("ETag"), etag);
  // Replies with maps (a cell's grid values) are the same bytes each time, so that a
  // poller gets 304s while the data stand still (protobuf alone prints map entries
  // in an order that changes between calls).
  const std::string two_axes =
      cluster.Cli({"submit", cluster.WriteSweep("two.yaml", R"(name: two-axes
dataset: {kind: cifar10}
model: {depth_n: 1}
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 2}
grid:
  model.depth_n: [1, 2]
  model.block: [reference, preact]
seeds: 1
)")});
  for (const std::string path : {"/results", "/curves", "/curves?metric=test_error"}) {
    const std::string url = "/api/v1/sweeps/" + two_axes.substr(0, 12) + path;
    auto reply = http.Get(url.c_str(), auth);
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->status, 200) << url << ": " << reply->body;
    httplib::Headers same = auth;
    same.emplace("If-None-Match", reply->get_header_value("ETag"));
    for (int i = 0; i < 5; ++i) {
      auto again = http.Get(url.c_str(), same);
      ASSERT_TRUE(again);
      EXPECT_EQ(again->status, 304) << url << ", request " << i;
    }
  }
  // Errors carry no ETag.
  auto error = http.Get("/api/v1/sweeps/nosuchsweep", auth);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 404);
  EXPECT_TRUE(error->get_header_value("ETag").empty());
}

// The test as the sweep's one worker, over gRPC: leases every run and reports
// epochs when told.
class FakeWorker {
 public:
  explicit FakeWorker(const std::string& address)
      : stub_(v1::Coordinator::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  void Register(int slots) {
    v1::RegisterWorkerRequest req;
    req.set_name("browser-test-worker");
    req.set_host("localhost");
    for (int i = 0; i < slots; ++i) req.add_devices("cpu");
    v1::RegisterWorkerResponse resp;
    ASSERT_TRUE(stub_->RegisterWorker(Ctx().get(), req, &resp).ok());
    worker_id_ = resp.worker_id();
    slots_ = slots;
  }

  // Leases one run per slot.
  std::vector<v1::RunLease> LeaseAll() {
    std::vector<v1::RunLease> leases;
    for (int slot = 0; slot < slots_; ++slot) {
      v1::AcquireRunRequest req;
      req.set_worker_id(worker_id_);
      req.set_slot(slot);
      req.set_device("cpu");
      v1::AcquireRunResponse resp;
      const grpc::Status st = stub_->AcquireRun(Ctx().get(), req, &resp);
      EXPECT_TRUE(st.ok()) << st.error_message();
      if (st.ok() && resp.has_run()) leases.push_back(resp.lease());
    }
    return leases;
  }

  void Report(const v1::RunLease& lease, int epoch, double test_error) {
    v1::ReportEpochRequest req;
    req.set_worker_id(worker_id_);
    req.set_run_id(lease.run_id());
    req.set_attempt(lease.attempt());
    auto* m = req.mutable_metrics();
    m->set_epoch(epoch);
    m->set_train_loss(1.0 / epoch);
    m->set_train_error(test_error * 0.8);
    m->set_test_error(test_error);
    m->set_test_loss(2.0 / epoch);
    m->set_lr(0.1);
    m->set_seconds(1.5);
    m->set_images_per_sec(1000);
    v1::ReportEpochResponse resp;
    const grpc::Status st = stub_->ReportEpoch(Ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  void Complete(const v1::RunLease& lease) {
    v1::CompleteRunRequest req;
    req.set_worker_id(worker_id_);
    req.set_run_id(lease.run_id());
    req.set_attempt(lease.attempt());
    req.set_param_count(12345);
    v1::CompleteRunResponse resp;
    const grpc::Status st = stub_->CompleteRun(Ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

 private:
  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return c;
  }

  std::unique_ptr<v1::Coordinator::Stub> stub_;
  std::string worker_id_;
  int slots_ = 0;
};

// A test error for (cell, seed, epoch): falling with the epoch, cells apart.
double ErrorOf(int cell, int seed, int epoch) {
  // Not linear in the seed, so that no cell's median of 3 seeds is its mean.
  return 0.5 - 0.05 * epoch + 0.04 * cell + 0.013 * seed + 0.007 * seed * seed +
         0.002 * cell * seed;
}

// Fails the test with the status when it is not OK.
#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::resweep::Status _st = (expr);                     \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)

template <typename T>
T Value(StatusOr<T> v) {
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? std::move(*v) : T();
}

// The numbers of a cell of the results table ("12.34 ± 0.56" -> {12.34, 0.56}).
std::vector<double> Numbers(const std::string& text) {
  std::vector<double> out;
  const char* p = text.c_str();
  while (*p) {
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end != p) {
      out.push_back(v);
      p = end;
    } else {
      ++p;
    }
  }
  return out;
}

// Whether a table's text shows `fraction` as the CLI does (a percent, 2 decimals).
::testing::AssertionResult ShowsPercent(const std::string& text, double shown, double fraction) {
  if (std::fabs(shown - fraction * 100) <= 0.005 + 1e-9) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "'" << text << "' shows " << shown << " for " << fraction * 100;
}

// Why a browser test skips (make test installs chromium: scripts/install-deps.sh).
constexpr const char* kNoChromium =
    "no chromium found (/usr/lib/chromium/chromium, /usr/bin/chromium): the dashboard's "
    "browser tests need Debian's chromium (scripts/install-deps.sh)";

TEST(Dashboard, ShowsASweepInProgressLiveInARealBrowser) {
  const std::string chromium = Browser::Find();
  if (chromium.empty()) GTEST_SKIP() << kNoChromium;
  Cluster cluster({.lease_seconds = 120, .heartbeat_seconds = 1});
  const int http_port = StartWithHttp(cluster);
  const std::string sweep_id = ShortId(SubmitSweep(cluster, "s.yaml", kSweep));

  // Three seeds of each cell finish (4 epochs); the fourth of each runs, at epoch 2.
  FakeWorker worker(cluster.address());
  ASSERT_NO_FATAL_FAILURE(worker.Register(8));
  const std::vector<v1::RunLease> leases = worker.LeaseAll();
  ASSERT_EQ(leases.size(), 8u);
  std::map<std::string, int> cell_index, seen_in_cell;
  std::vector<v1::RunLease> running;
  for (const auto& lease : leases) {
    const int cell = cell_index.emplace(lease.cell_label(), cell_index.size()).first->second;
    const int nth = seen_in_cell[lease.cell_label()]++;
    const int epochs = nth < 3 ? 4 : 2;
    for (int e = 1; e <= epochs; ++e) {
      ASSERT_NO_FATAL_FAILURE(
          worker.Report(lease, e, ErrorOf(cell, static_cast<int>(lease.seed()), e)));
    }
    if (nth < 3) {
      ASSERT_NO_FATAL_FAILURE(worker.Complete(lease));
    } else {
      running.push_back(lease);
    }
  }
  ASSERT_EQ(running.size(), 2u);
  const json expected = json::parse(cluster.Cli({"results", sweep_id, "--format", "json"}));
  ASSERT_EQ(expected["cells"].size(), 2u) << expected.dump(2);

  const std::string artifacts = std::string(RESWEEP_TEST_ARTIFACTS_DIR) + "/dashboard";
  std::filesystem::create_directories(artifacts);
  Browser browser;
  ASSERT_OK(browser.Start(chromium, cluster.dir()));
  ASSERT_OK(browser.SetViewport(1280, 800, /*mobile=*/false));
  const std::string base = "http://127.0.0.1:" + std::to_string(http_port) + "/?poll=500";

  // Sweeps: the sweep, its progress and counts.
  ASSERT_OK(browser.Navigate(base + "#/"));
  ASSERT_OK(browser.WaitUntil("window.resweepDashboard && resweepDashboard.ready.sweeps"));
  const json sweep_row = Value(browser.Eval(
      "(() => { const r = document.querySelector('#sweeps-table tr[data-sweep]');"
      " return {id: r.dataset.sweep, text: r.innerText,"
      " finished: r.querySelector('[role=progressbar]').getAttribute('aria-valuenow'),"
      " total: r.querySelector('[role=progressbar]').getAttribute('aria-valuemax')}; })()"));
  EXPECT_EQ(sweep_row.value("id", "").substr(0, 12), sweep_id);
  EXPECT_EQ(sweep_row.value("finished", ""), "6");
  EXPECT_EQ(sweep_row.value("total", ""), "8");
  EXPECT_NE(sweep_row.value("text", "").find("dashboard"), std::string::npos) << sweep_row;
  ASSERT_OK(browser.Screenshot(artifacts + "/sweeps.png"));

  // One sweep, reached by its link (no reload from here on: the marker stays).
  ASSERT_OK(browser
                .Eval("window.notReloaded = true; document.querySelector("
                      "'#sweeps-table a').click(); true")
                .status());
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'sweep' && resweepDashboard.ready.results && "
                        "resweepDashboard.ready.curves && resweepDashboard.ready.runs && "
                        "resweepDashboard.ready.summary"));

  // The results table: the numbers of `resweep results --format json`.
  const json table = Value(
      browser.Eval("Array.from(document.querySelectorAll('#results-table tbody tr')).map((tr) => {"
                   " const cells = {}; tr.querySelectorAll('[data-key]').forEach((td) => {"
                   "  cells[td.dataset.key] = {text: td.textContent, value: td.dataset.value}; });"
                   " return {cell: tr.dataset.cell, best: tr.classList.contains('best'), cells,"
                   "  ciLow: tr.dataset.ci95Low, ciHigh: tr.dataset.ci95High}; })"));
  ASSERT_EQ(table.size(), expected["cells"].size()) << table.dump(2);
  for (size_t i = 0; i < table.size(); ++i) {
    const json& row = table[i];
    const json& want = expected["cells"][i];
    SCOPED_TRACE(want["cell"].get<std::string>());
    EXPECT_EQ(row["cell"], want["cell"]);
    EXPECT_EQ(row["best"], want["is_best"]);
    const json& lk = want["last_k_test_error"];
    // Exact values (the page keeps the API's numbers) ...
    auto value = [&](const char* key) {
      return std::strtod(row["cells"][key]["value"].get<std::string>().c_str(), nullptr);
    };
    auto text = [&](const char* key) { return row["cells"][key]["text"].get<std::string>(); };
    EXPECT_EQ(value("n"), lk["n"].get<double>());
    EXPECT_EQ(text("n"), std::to_string(want["runs_succeeded"].get<int>()) + "/" +
                             std::to_string(want["runs_total"].get<int>()));
    EXPECT_EQ(value("last_k_mean"), lk["mean"].get<double>());
    EXPECT_EQ(value("last_k_std"), lk["std"].get<double>());
    EXPECT_EQ(std::strtod(row["ciLow"].get<std::string>().c_str(), nullptr),
              lk["ci95"][0].get<double>());
    EXPECT_EQ(std::strtod(row["ciHigh"].get<std::string>().c_str(), nullptr),
              lk["ci95"][1].get<double>());
    EXPECT_EQ(value("final_mean"), want["final_test_error"]["mean"].get<double>());
    EXPECT_EQ(value("params"), want["param_count"].get<double>());
    // ... and shown as the CLI shows them.
    const auto mean_ci = Numbers(text("last_k_mean"));
    ASSERT_EQ(mean_ci.size(), 2u) << text("last_k_mean");
    EXPECT_TRUE(ShowsPercent(text("last_k_mean"), mean_ci[0], lk["mean"].get<double>()));
    EXPECT_TRUE(ShowsPercent(text("last_k_mean"), mean_ci[1],
                             (lk["ci95"][1].get<double>() - lk["ci95"][0].get<double>()) / 2));
    EXPECT_TRUE(ShowsPercent(text("last_k_std"), Numbers(text("last_k_std")).at(0),
                             lk["std"].get<double>()));
    const auto final_mean_std = Numbers(text("final_mean"));
    ASSERT_EQ(final_mean_std.size(), 2u) << text("final_mean");
    EXPECT_TRUE(ShowsPercent(text("final_mean"), final_mean_std[0],
                             want["final_test_error"]["mean"].get<double>()));
    EXPECT_TRUE(ShowsPercent(text("final_mean"), final_mean_std[1],
                             want["final_test_error"]["std"].get<double>()));
    const json& cmp = want["comparison"];
    if (cmp["p_holm"].is_null()) {
      EXPECT_EQ(text("p_holm"), "-");
    } else {
      EXPECT_EQ(value("p_holm"), cmp["p_holm"].get<double>());
    }
    if (cmp["probability_better"].is_null()) {
      EXPECT_EQ(text("probability_better"), "-");
    } else {
      EXPECT_EQ(value("probability_better"), cmp["probability_better"].get<double>());
    }
  }

  // The curves: one series per cell, named as the results name the cells.
  const json labels = Value(browser.Eval("resweepDashboard.charts.curves.getLabels().slice(1)"));
  json cells = json::array();
  for (const auto& c : expected["cells"]) cells.push_back(c["cell"]);
  EXPECT_EQ(labels, cells);
  ASSERT_OK(browser.Screenshot(artifacts + "/sweep.png"));

  // Zoom from the keyboard: an epoch range typed in sets the chart's x range;
  // "Reset zoom" shows every epoch again.
  ASSERT_OK(browser
                .Eval("(() => { for (const [id, v] of [['curve-from', '1'], ['curve-to', '2']]) {"
                      " const i = document.getElementById(id); i.focus(); i.value = v;"
                      " i.dispatchEvent(new Event('change')); } return true; })()")
                .status());
  EXPECT_EQ(Value(browser.Eval("resweepDashboard.charts.curves.xAxisRange()")), json({1, 2}));
  ASSERT_OK(browser.Eval("document.getElementById('curve-reset').click(); true").status());
  EXPECT_FALSE(Value(browser.Eval("resweepDashboard.charts.curves.isZoomed('x')")).get<bool>());

  // Each seed on demand: then a series per run too.
  ASSERT_OK(browser.Eval("document.getElementById('curve-seeds').click(); true").status());
  ASSERT_OK(browser.WaitUntil("resweepDashboard.charts.curves.getLabels().length === 1 + 2 + 8"));

  // A new epoch of a running run appears without a reload: in its seed's series of
  // the chart and in the runs table.
  const v1::RunLease& live = running[0];
  const int live_cell = cell_index[live.cell_label()];
  const double new_error = ErrorOf(live_cell, static_cast<int>(live.seed()), 3);
  const std::string series = live.cell_label() + " · seed " + std::to_string(live.seed());
  const std::string value_at_epoch_3 =
      "(() => { const g = resweepDashboard.charts.curves;"
      " const col = g.getLabels().indexOf(" +
      json(series).dump() +
      ");"
      " for (let r = 0; r < g.numRows(); r++) { if (g.getValue(r, 0) === 3) {"
      "  const v = g.getValue(r, col); return Array.isArray(v) ? v[1] : v; } }"
      " return null; })()";
  EXPECT_TRUE(Value(browser.Eval(value_at_epoch_3)).is_null());
  ASSERT_NO_FATAL_FAILURE(worker.Report(live, 3, new_error));
  ASSERT_OK(browser.WaitUntil(value_at_epoch_3 + " !== null", 15000));
  EXPECT_NEAR(Value(browser.Eval(value_at_epoch_3)).get<double>(), new_error * 100, 1e-9);
  ASSERT_OK(browser.WaitUntil("document.querySelector('#runs-table tr[data-run=\"" + live.run_id() +
                              "\"] [data-key=epoch]').dataset.value === '3'"));
  EXPECT_EQ(Value(browser.Eval("window.notReloaded === true")), json(true));

  // The run state filter: only the runs in that state.
  auto filter = [&](const std::string& state, int expected_rows) {
    SCOPED_TRACE(state);
    ASSERT_OK(browser
                  .Eval("(() => { const s = document.getElementById('runs-state'); s.value = '" +
                        state + "'; s.dispatchEvent(new Event('change')); return true; })()")
                  .status());
    ASSERT_OK(browser.WaitUntil("document.getElementById('runs-table').dataset.filter === '" +
                                state + "'"));
    const json states = Value(browser.Eval(
        "Array.from(document.querySelectorAll('#runs-table tbody tr[data-run]')).map((tr) => "
        "tr.dataset.state)"));
    EXPECT_EQ(states.size(), static_cast<size_t>(expected_rows)) << states;
    for (const auto& s : states) EXPECT_EQ(s, state);
  };
  filter("running", 2);
  filter("succeeded", 6);
  filter("failed", 0);

  // Workers: the test's worker, holding the two running runs' leases.
  ASSERT_OK(browser.Eval("location.hash = '#/workers'; true").status());
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'workers' && resweepDashboard.ready.workers"));
  const std::string worker_text =
      Value(browser.Eval("document.querySelector('#workers-table tbody tr').innerText"));
  EXPECT_NE(worker_text.find("browser-test-worker"), std::string::npos) << worker_text;
  EXPECT_NE(worker_text.find("alive"), std::string::npos) << worker_text;
  // Its throughput now: the two running runs' latest epochs, 1,000 images/s each.
  EXPECT_EQ(Value(browser.Eval(
                "document.querySelector('#workers-table tbody tr td.images-per-sec').textContent")),
            json("2,000"));
  ASSERT_OK(browser.Screenshot(artifacts + "/workers.png"));
  EXPECT_EQ(Value(browser.Eval("window.notReloaded === true")), json(true));

  // A phone's width: the page fits (tables scroll inside their own boxes).
  ASSERT_OK(browser.SetViewport(390, 844, /*mobile=*/true));
  ASSERT_OK(browser.Eval("location.hash = '#/sweep/" + sweep_id + "'; true").status());
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'sweep' && resweepDashboard.ready.curves"));
  EXPECT_LE(Value(browser.Eval("document.documentElement.scrollWidth")).get<int>(), 390);
  ASSERT_OK(browser.Screenshot(artifacts + "/sweep-phone.png"));

  // Nothing failed to update (the page says so in its status line).
  EXPECT_EQ(Value(browser.Eval("document.getElementById('status').textContent")), json(""));
  EXPECT_TRUE(browser.errors().empty()) << [&] {
    std::string all;
    for (const auto& e : browser.errors()) all += e + "\n";
    return all;
  }();
  std::printf("dashboard screenshots: %s\n", artifacts.c_str());
}

// Presses a key in the page as a keyboard does (Input.dispatchKeyEvent): "Tab" moves
// the focus, "Enter" activates the focused button.
Status Press(Browser& browser, const std::string& key) {
  const int code = key == "Tab" ? 9 : 13;
  json down = {
      {"type", "rawKeyDown"}, {"key", key}, {"code", key}, {"windowsVirtualKeyCode", code}};
  if (key == "Enter") {
    down["type"] = "keyDown";
    down["text"] = "\r";
  }
  RESWEEP_RETURN_IF_ERROR(browser.Call("Input.dispatchKeyEvent", down).status());
  return browser
      .Call("Input.dispatchKeyEvent",
            {{"type", "keyUp"}, {"key", key}, {"code", key}, {"windowsVirtualKeyCode", code}})
      .status();
}

// The run ids of `resweep runs SWEEP [--state STATE] --format json`, in its order.
std::vector<std::string> CliRunIds(Cluster& cluster, const std::string& sweep,
                                   const std::string& state = "") {
  std::vector<std::string> args = {"runs", sweep, "--format", "json"};
  if (!state.empty()) args.insert(args.end(), {"--state", state});
  const json listed = json::parse(cluster.Cli(args));
  std::vector<std::string> ids;
  for (const auto& run : listed["runs"]) {
    ids.push_back(run["run_id"].get<std::string>());
  }
  return ids;
}

std::vector<std::string> Slice(const std::vector<std::string>& v, size_t from, size_t to) {
  return {v.begin() + std::min(from, v.size()), v.begin() + std::min(to, v.size())};
}

// Issue 11: a sweep with more runs than one page of the API: every run can be reached
// from the page (Next / Previous, by keyboard too), a poll refreshes the page shown
// rather than page 1, and the state filter pages too (a new filter: back to page 1).
// ?page_size=3 makes pages of 3 rows out of the 8 runs; the sweeps table pages too.
TEST(Dashboard, PagesThroughTheRunsAndSweepsOfALongListInARealBrowser) {
  const std::string chromium = Browser::Find();
  if (chromium.empty()) GTEST_SKIP() << kNoChromium;
  Cluster cluster({.lease_seconds = 120, .heartbeat_seconds = 1});
  const int http_port = StartWithHttp(cluster);
  const std::string sweep_id = ShortId(SubmitSweep(cluster, "s.yaml", kSweep));
  const std::vector<std::string> order = CliRunIds(cluster, sweep_id);
  ASSERT_EQ(order.size(), 8u);

  // The runs at grid positions 0, 1, 3, 4 and 6 succeed; 2, 5 and 7 are running.
  FakeWorker worker(cluster.address());
  ASSERT_NO_FATAL_FAILURE(worker.Register(8));
  std::map<std::string, v1::RunLease> lease_of;
  for (const auto& lease : worker.LeaseAll()) lease_of[lease.run_id()] = lease;
  ASSERT_EQ(lease_of.size(), 8u);
  for (size_t i = 0; i < order.size(); ++i) {
    ASSERT_EQ(lease_of.count(order[i]), 1u) << order[i];
    const v1::RunLease& lease = lease_of[order[i]];
    const bool succeeds = i == 0 || i == 1 || i == 3 || i == 4 || i == 6;
    for (int e = 1; e <= (succeeds ? 4 : 1); ++e) {
      ASSERT_NO_FATAL_FAILURE(worker.Report(lease, e, 0.5 - 0.05 * e));
    }
    if (succeeds) ASSERT_NO_FATAL_FAILURE(worker.Complete(lease));
  }
  const std::vector<std::string> succeeded = CliRunIds(cluster, sweep_id, "succeeded");
  ASSERT_EQ(succeeded,
            (std::vector<std::string>{order[0], order[1], order[3], order[4], order[6]}));
  // Three more sweeps (one run each): four sweeps, two pages of the sweeps table.
  std::vector<std::string> sweeps = {sweep_id};
  for (const std::string name : {"second", "third", "fourth"}) {
    sweeps.push_back(SubmitOneRunSweep(cluster, name));
  }

  Browser browser;
  ASSERT_OK(browser.Start(chromium, cluster.dir()));
  ASSERT_OK(browser.SetViewport(1280, 800, /*mobile=*/false));
  const std::string base =
      "http://127.0.0.1:" + std::to_string(http_port) + "/?poll=500&page_size=3";
  const std::string rows =
      "Array.from(document.querySelectorAll('#runs-table tbody tr[data-run]')).map((tr) => "
      "tr.dataset.run)";
  const std::string where =
      "document.querySelector('#runs-h').parentNode.querySelector("
      "'.page-where').textContent";
  const std::string prev =
      "document.querySelector('#runs-h').parentNode.querySelector('.page-prev')";
  const std::string next =
      "document.querySelector('#runs-h').parentNode.querySelector('.page-next')";
  auto shown = [&] { return Value(browser.Eval(rows)).get<std::vector<std::string>>(); };
  auto text = [&] { return Value(browser.Eval(where)).get<std::string>(); };
  auto disabled = [&](const std::string& button) {
    return Value(browser.Eval(button + ".disabled")).get<bool>();
  };
  // Waits until the runs table shows page `page` of filter `state`, drawn from its reply.
  auto on_page = [&](const std::string& state, int page) {
    return browser.WaitUntil(
        "(() => { const t = document.getElementById('runs-table');"
        " return t.dataset.filter === '" +
        state + "' && t.dataset.page === '" + std::to_string(page) + "'; })()");
  };
  auto choose_state = [&](const std::string& state) {
    return browser
        .Eval("(() => { const s = document.getElementById('runs-state'); s.value = '" + state +
              "'; s.dispatchEvent(new Event('change')); return true; })()")
        .status();
  };

  ASSERT_OK(browser.Navigate(base + "#/sweep/" + sweep_id));
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'sweep' && resweepDashboard.ready.runs && "
                        "resweepDashboard.ready.results"));
  ASSERT_OK(on_page("", 1));
  // Page 1 of 3: the first three runs of `resweep runs`, of the sweep's 8.
  ASSERT_OK(browser.WaitUntil(where + " === 'runs 1–3 of 8 · page 1'"));
  EXPECT_EQ(shown(), Slice(order, 0, 3));
  EXPECT_TRUE(disabled(prev));
  EXPECT_FALSE(disabled(next));
  EXPECT_EQ(Value(browser.Eval(next + ".getAttribute('aria-label')")), json("next page of runs"));
  EXPECT_EQ(Value(browser.Eval(next + ".tagName")), json("BUTTON"));

  // From the keyboard: Tab from the state filter reaches Next (Previous is disabled
  // on page 1, so it is skipped); Enter shows page 2.
  ASSERT_OK(browser.Eval("document.getElementById('runs-state').focus(); true").status());
  ASSERT_OK(Press(browser, "Tab"));
  EXPECT_EQ(Value(browser.Eval("document.activeElement === " + next)), json(true));
  ASSERT_OK(Press(browser, "Enter"));
  ASSERT_OK(on_page("", 2));
  EXPECT_EQ(shown(), Slice(order, 3, 6));
  EXPECT_EQ(text(), "runs 4–6 of 8 · page 2");
  EXPECT_FALSE(disabled(prev));
  EXPECT_FALSE(disabled(next));

  // Polls refresh page 2, not page 1: a new epoch of the running run at position 5
  // appears, and the page is still page 2 after many polls.
  const std::string epoch_of_5 = "document.querySelector('#runs-table tr[data-run=\"" + order[5] +
                                 "\"] [data-key=epoch]').dataset.value";
  EXPECT_EQ(Value(browser.Eval(epoch_of_5)), json("1"));
  const int polls = Value(browser.Eval("resweepDashboard.polls")).get<int>();
  ASSERT_NO_FATAL_FAILURE(worker.Report(lease_of[order[5]], 2, 0.4));
  ASSERT_OK(browser.WaitUntil(epoch_of_5 + " === '2'", 15000));
  ASSERT_OK(browser.WaitUntil("resweepDashboard.polls >= " + std::to_string(polls + 12), 15000));
  EXPECT_EQ(shown(), Slice(order, 3, 6));
  EXPECT_EQ(text(), "runs 4–6 of 8 · page 2");
  const std::string artifacts = std::string(RESWEEP_TEST_ARTIFACTS_DIR) + "/dashboard";
  std::filesystem::create_directories(artifacts);
  ASSERT_OK(browser.Screenshot(artifacts + "/runs-page2.png"));

  // Page 3, the last: two runs; Next is disabled and the focus moved to Previous.
  ASSERT_OK(browser.Eval(next + ".focus(); true").status());
  ASSERT_OK(Press(browser, "Enter"));
  ASSERT_OK(on_page("", 3));
  EXPECT_EQ(shown(), Slice(order, 6, 8));
  EXPECT_EQ(text(), "runs 7–8 of 8 · page 3");
  EXPECT_TRUE(disabled(next));
  EXPECT_EQ(Value(browser.Eval("document.activeElement === " + prev)), json(true));

  // Back, by the page's own tokens: page 2, then page 1.
  ASSERT_OK(Press(browser, "Enter"));
  ASSERT_OK(on_page("", 2));
  EXPECT_EQ(shown(), Slice(order, 3, 6));
  ASSERT_OK(browser.Eval(prev + ".click(); true").status());
  ASSERT_OK(on_page("", 1));
  EXPECT_EQ(shown(), Slice(order, 0, 3));
  EXPECT_TRUE(disabled(prev));

  // Filter and paging together: from page 2, a new filter starts at its page 1.
  ASSERT_OK(browser.Eval(next + ".click(); true").status());
  ASSERT_OK(on_page("", 2));
  ASSERT_OK(choose_state("succeeded"));
  ASSERT_OK(on_page("succeeded", 1));
  EXPECT_EQ(shown(), Slice(succeeded, 0, 3));
  ASSERT_OK(browser.WaitUntil(where + " === 'runs 1–3 of 5 · page 1'"));
  ASSERT_OK(browser.Eval(next + ".click(); true").status());
  ASSERT_OK(on_page("succeeded", 2));
  EXPECT_EQ(shown(), Slice(succeeded, 3, 5));
  EXPECT_EQ(text(), "runs 4–5 of 5 · page 2");
  EXPECT_TRUE(disabled(next));
  ASSERT_OK(browser.Eval(prev + ".click(); true").status());
  ASSERT_OK(on_page("succeeded", 1));
  EXPECT_EQ(shown(), Slice(succeeded, 0, 3));
  // Exactly one page (3 running runs): no buttons, the count stays.
  ASSERT_OK(choose_state("running"));
  ASSERT_OK(on_page("running", 1));
  EXPECT_EQ(shown(), CliRunIds(cluster, sweep_id, "running"));
  EXPECT_EQ(shown(), (std::vector<std::string>{order[2], order[5], order[7]}));
  EXPECT_EQ(text(), "runs 1–3 of 3 · page 1");
  EXPECT_EQ(Value(browser.Eval(next + ".hidden && " + prev + ".hidden")), json(true));
  ASSERT_OK(choose_state(""));
  ASSERT_OK(on_page("", 1));
  EXPECT_EQ(shown(), Slice(order, 0, 3));

  // The sweeps table: four sweeps, pages of three, newest first across pages (the
  // API's newest_first): page 1 holds the three newest.
  ASSERT_OK(browser.Eval("location.hash = '#/'; true").status());
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'sweeps' && resweepDashboard.ready.sweeps"));
  const std::string sweep_rows =
      "Array.from(document.querySelectorAll('#sweeps-table tr[data-sweep]')).map((tr) => "
      "tr.dataset.sweep.slice(0, 12))";
  auto shown_sweeps = [&] {
    return Value(browser.Eval(sweep_rows)).get<std::vector<std::string>>();
  };
  EXPECT_EQ(shown_sweeps(), (std::vector<std::string>{sweeps[3], sweeps[2], sweeps[1]}));
  EXPECT_EQ(Value(browser.Eval("document.querySelector('main .page-where').textContent")),
            json("sweeps 1–3 · page 1"));
  // A sweep submitted now is first on page 1 at the next poll.
  sweeps.push_back(SubmitOneRunSweep(cluster, "fifth"));
  ASSERT_OK(browser.WaitUntil(sweep_rows + "[0] === '" + sweeps[4] + "'", 15000));
  EXPECT_EQ(shown_sweeps(), (std::vector<std::string>{sweeps[4], sweeps[3], sweeps[2]}));
  ASSERT_OK(browser
                .Eval("document.querySelector('#sweeps-table').closest('main')"
                      ".querySelector('.page-next').click(); true")
                .status());
  ASSERT_OK(browser.WaitUntil("document.getElementById('sweeps-table').dataset.page === '2'"));
  // Page 2: the two oldest, the first submitted last.
  EXPECT_EQ(shown_sweeps(), (std::vector<std::string>{sweeps[1], sweeps[0]}));
  EXPECT_EQ(Value(browser.Eval("document.querySelector('main .page-where').textContent")),
            json("sweeps 4–5 · page 2"));
  EXPECT_TRUE(
      Value(browser.Eval("document.querySelector('main .page-next').disabled")).get<bool>());

  // Nothing failed to update.
  EXPECT_EQ(Value(browser.Eval("document.getElementById('status').textContent")), json(""));
  EXPECT_TRUE(browser.errors().empty()) << [&] {
    std::string all;
    for (const auto& e : browser.errors()) all += e + "\n";
    return all;
  }();
}

// What the page reported as errors, one a line (for a failure message).
std::string ErrorsOf(const Browser& browser) {
  std::string all;
  for (const auto& e : browser.errors()) all += e + "\n";
  return all;
}

// Issue 11 review, finding 3: grid values are free text (a dataset.path is any string)
// and reach the summary chart's ticks and legend, which dygraphs writes as HTML. A
// value that is markup is shown as text, and runs nowhere: every string handed to the
// charts is escaped, and the page's Content-Security-Policy allows no inline script.
TEST(Dashboard, GridValuesThatAreMarkupAreShownAsTextUnderAContentSecurityPolicy) {
  const std::string chromium = Browser::Find();
  if (chromium.empty()) GTEST_SKIP() << kNoChromium;
  Cluster cluster({.lease_seconds = 120, .heartbeat_seconds = 1});
  const int http_port = StartWithHttp(cluster);
  const std::string payload =
      "<img src=x onerror=\"document.body.setAttribute('data-pwned','yes');window.pwned=1\">";
  const std::string sweep_id = ShortId(SubmitSweep(cluster, "x.yaml", R"yaml(name: markup
dataset: {kind: cifar10}
model: {depth_n: 1}
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 2}
grid:
  dataset.path: ["a", "<img src=x onerror=\"document.body.setAttribute('data-pwned','yes');window.pwned=1\">"]
seeds: 1
)yaml"));

  // The page and its files carry the policy.
  httplib::Client http("127.0.0.1", http_port);
  http.set_read_timeout(20, 0);
  for (const char* path : {"/", "/static/app.js", "/static/vendor/dygraph.min.js"}) {
    auto res = http.Get(path);
    ASSERT_TRUE(res) << path;
    const std::string csp = res->get_header_value("Content-Security-Policy");
    EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << path << ": " << csp;
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << path << ": " << csp;
  }

  // Both runs finish, so that the summary chart has a point at each value.
  FakeWorker worker(cluster.address());
  ASSERT_NO_FATAL_FAILURE(worker.Register(2));
  const std::vector<v1::RunLease> leases = worker.LeaseAll();
  ASSERT_EQ(leases.size(), 2u);
  for (size_t i = 0; i < leases.size(); ++i) {
    for (int e = 1; e <= 2; ++e)
      ASSERT_NO_FATAL_FAILURE(worker.Report(leases[i], e, 0.3 + 0.1 * i));
    ASSERT_NO_FATAL_FAILURE(worker.Complete(leases[i]));
  }

  Browser browser;
  ASSERT_OK(browser.Start(chromium, cluster.dir()));
  ASSERT_OK(browser.SetViewport(1280, 800, /*mobile=*/false));
  ASSERT_OK(browser.Navigate("http://127.0.0.1:" + std::to_string(http_port) +
                             "/?poll=500#/sweep/" + sweep_id));
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'sweep' && resweepDashboard.ready.results && "
                        "resweepDashboard.ready.curves && resweepDashboard.ready.runs && "
                        "resweepDashboard.ready.summary"));
  // The legends with values: the summary chart at the markup's tick, the curves at epoch 2.
  ASSERT_OK(browser
                .Eval("(() => { const s = resweepDashboard.charts.summary;"
                      " for (let r = 0; r < s.numRows(); r++) if (s.getValue(r, 0) === 1)"
                      "  s.setSelection(r);"
                      " resweepDashboard.charts.curves.setSelection(1); return true; })()")
                .status());

  // Shown as text: the summary chart's tick, its legend and axis, the curves' legend,
  // the cell toggles, the results and runs tables.
  const json ticks = Value(
      browser.Eval("Array.from(document.querySelectorAll('#summary-chart .dygraph-axis-label-x'))"
                   ".map((e) => e.textContent)"));
  EXPECT_NE(std::find(ticks.begin(), ticks.end(), json(payload)), ticks.end()) << ticks.dump();
  const std::string summary_legend =
      Value(browser.Eval("document.getElementById('summary-legend').textContent"));
  EXPECT_NE(summary_legend.find("dataset.path=" + payload), std::string::npos) << summary_legend;
  for (const std::string where :
       {"#curve-legend", ".cell-toggles", "#results-table", "#runs-table"}) {
    const std::string text =
        Value(browser.Eval("document.querySelector('" + where + "').textContent"));
    EXPECT_NE(text.find(payload), std::string::npos) << where << ": " << text;
  }
  // ... and nowhere markup: no image was made, the handler never ran.
  EXPECT_EQ(Value(browser.Eval("document.querySelectorAll('img').length")), json(0));
  EXPECT_EQ(Value(browser.Eval("document.body.hasAttribute('data-pwned')")), json(false));
  EXPECT_EQ(Value(browser.Eval("window.pwned === undefined")), json(true));
  // Nothing the policy refused, nothing failed.
  EXPECT_EQ(Value(browser.Eval("document.getElementById('status').textContent")), json(""));
  EXPECT_TRUE(browser.errors().empty()) << ErrorsOf(browser);

  // The policy is in force: an inline script added to the page does not run, and the
  // browser reports the refusal (so that errors() would have shown any above).
  EXPECT_EQ(Value(browser.Eval("(() => { const s = document.createElement('script');"
                               " s.textContent = 'window.inlineRan = true';"
                               " document.head.append(s); return window.inlineRan === undefined;"
                               " })()")),
            json(true));
  // (The report is an event of its own: a few round trips until it has arrived.)
  for (int i = 0; i < 100 && ErrorsOf(browser).find("Content Security Policy") == std::string::npos;
       ++i) {
    ASSERT_OK(browser.Eval("true").status());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(ErrorsOf(browser).find("Content Security Policy"), std::string::npos)
      << ErrorsOf(browser);
}

// Issue 11 review, finding 15: a token that may not read (a worker's) is asked for
// again with the reason, as a missing one is; an address with a malformed %-escape
// shows what is wrong instead of a blank page.
TEST(Dashboard, AsksAgainForARefusedTokenAndExplainsAMalformedAddress) {
  const std::string chromium = Browser::Find();
  if (chromium.empty()) GTEST_SKIP() << kNoChromium;
  Cluster cluster({});
  const std::string token_file = cluster.dir() + "/tokens";
  WriteFile(token_file,
            "admin admintoken0123456789abcdef\nread readtoken0123456789abcdef\n"
            "worker workertoken0123456789abcdef\n");
  const int http_port = StartWithHttp(cluster, {"--token-file", token_file});
  cluster.set_cli_args({"--token-file", token_file});
  const std::string sweep_id = ShortId(SubmitSweep(cluster, "s.yaml", kSweep));

  Browser browser;
  ASSERT_OK(browser.Start(chromium, cluster.dir()));
  ASSERT_OK(browser.SetViewport(1280, 800, /*mobile=*/false));
  ASSERT_OK(browser.Navigate("http://127.0.0.1:" + std::to_string(http_port) + "/?poll=500#/"));
  auto give_token = [&](const std::string& token) {
    return browser
        .Eval("(() => { document.getElementById('token-input').value = '" + token +
              "'; document.querySelector('.token-form').requestSubmit(); return true; })()")
        .status();
  };
  // No token: asked for one.
  ASSERT_OK(browser.WaitUntil("document.getElementById('token-input') !== null"));
  EXPECT_EQ(Value(browser.Eval("document.getElementById('token-refused') === null")), json(true));
  // A worker's token: refused (403), asked again, saying why.
  ASSERT_OK(give_token("workertoken0123456789abcdef"));
  ASSERT_OK(browser.WaitUntil("document.getElementById('token-refused') !== null"));
  const std::string why =
      Value(browser.Eval("document.getElementById('token-refused').textContent"));
  EXPECT_NE(why.find("PERMISSION_DENIED"), std::string::npos) << why;
  EXPECT_NE(why.find("read"), std::string::npos) << why;
  EXPECT_EQ(Value(browser.Eval("document.getElementById('token-input') !== null")), json(true));
  // A read token: the sweeps.
  ASSERT_OK(give_token("readtoken0123456789abcdef"));
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'sweeps' && resweepDashboard.ready.sweeps"));
  EXPECT_EQ(Value(browser.Eval("document.querySelector('#sweeps-table tr[data-sweep]')"
                               ".dataset.sweep.slice(0, 12)")),
            json(sweep_id));

  // A malformed escape in the address: an error message, not a blank page.
  ASSERT_OK(browser.Eval("location.hash = '#/sweep/%E0'; true").status());
  ASSERT_OK(browser.WaitUntil("resweepDashboard.page === 'error'"));
  const std::string message =
      Value(browser.Eval("document.getElementById('page-error').textContent"));
  EXPECT_NE(message.find("%E0"), std::string::npos) << message;
  EXPECT_EQ(Value(browser.Eval("document.getElementById('status').textContent")), json(message));
  // And back to a good address.
  ASSERT_OK(browser.Eval("location.hash = '#/sweep/" + sweep_id + "'; true").status());
  ASSERT_OK(
      browser.WaitUntil("resweepDashboard.page === 'sweep' && resweepDashboard.ready.results"));

  // No script error; the only ones the browser logged are the refused requests' (401, 403).
  for (const auto& e : browser.errors()) {
    EXPECT_EQ(e.rfind("log: ", 0), 0u) << e;
    EXPECT_NE(e.find("\"network\""), std::string::npos) << e;
  }
}

// The value of an unlabelled series of the coordinator's /metrics; -1 when absent.
double MetricValue(httplib::Client& http, const std::string& name) {
  auto res = http.Get("/metrics");
  if (!res || res->status != 200) return -1;
  size_t at = 0;
  const std::string& text = res->body;
  while ((at = text.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n')
      return std::strtod(text.c_str() + at + name.size(), nullptr);
    at += name.size();
  }
  return -1;
}

// Issue 11: the replies about a sweep come from the reply cache while the sweep stands
// still (seen in the cache's counters in /metrics, not in timings), and after each
// kind of change (a lease, an epoch, through a run another sweep shares too, a
// finished run, a cancel) the very next poll shows it, never the reply before.
TEST(Dashboard, UnchangedPollsComeFromTheReplyCacheAndTheFirstPollAfterAChangeShowsIt) {
  Cluster cluster({.lease_seconds = 120, .heartbeat_seconds = 1});
  const int port = StartWithHttp(cluster);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);
  const std::string a = ShortId(SubmitSweep(cluster, "a.yaml", kSweep));
  // The first cell of `a`, two seeds: two runs that both sweeps hold.
  const std::string b = ShortId(SubmitSweep(cluster, "b.yaml", R"(name: shared
dataset: {kind: cifar10}
model: {depth_n: 1}
trainer: {kind: synthetic, epoch_seconds: 0.01}
train: {epochs: 4}
grid:
  model.depth_n: [1]
seeds: 2
)"));
  auto hits = [&] { return MetricValue(http, "resweep_http_cache_hits_total"); };
  auto misses = [&] { return MetricValue(http, "resweep_http_cache_misses_total"); };
  auto get_text = [&](const std::string& path, const httplib::Headers& headers = {}) {
    auto res = http.Get(("/api/v1/sweeps/" + path).c_str(), headers);
    EXPECT_TRUE(res) << path;
    if (!res) return std::make_pair(0, std::string());
    return std::make_pair(res->status, res->body);
  };
  auto get = [&](const std::string& path) {
    const auto [status, body] = get_text(path);
    EXPECT_EQ(status, 200) << path << ": " << body;
    return status == 200 ? json::parse(body) : json();
  };

  // Unchanged polls: the first computes each reply, the next ones are the cache's.
  const std::vector<std::string> polled = {
      a,           a + "/results", a + "/runs", a + "/curves?metric=test_error&downsample=400",
      b + "/runs", b + "/curves"};
  std::map<std::string, std::pair<int, std::string>> first;
  for (const auto& path : polled) first[path] = get_text(path);
  ASSERT_EQ(hits(), 0);
  ASSERT_EQ(misses(), static_cast<double>(polled.size()));
  for (int round = 0; round < 3; ++round) {
    for (const auto& path : polled) EXPECT_EQ(get_text(path), first[path]) << path;
  }
  EXPECT_EQ(hits(), 3.0 * polled.size());
  EXPECT_EQ(misses(), static_cast<double>(polled.size()));
  // A conditional poll is answered 304 from the cache too.
  auto etag = http.Get(("/api/v1/sweeps/" + a + "/runs").c_str())->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(get_text(a + "/runs", {{"If-None-Match", etag}}).first, 304);
  // A name or an id prefix reads the same entries as the id.
  EXPECT_EQ(get_text("dashboard/runs"), first[a + "/runs"]);
  EXPECT_EQ(get_text(a.substr(0, 8) + "/runs"), first[a + "/runs"]);
  EXPECT_EQ(misses(), static_cast<double>(polled.size()));

  // Each check: the poll before the change is the cache's (its sweep stood still),
  // the one after it is computed and shows the change.
  auto settled = [&](const std::string& path) {
    get(path);
    const double before = hits();
    json body = get(path);
    EXPECT_EQ(hits(), before + 1) << path << ": unchanged, it should come from the cache";
    return body;
  };
  auto run_of = [](const json& runs, const std::string& id) {
    for (const auto& r : runs["runs"]) {
      if (r["runId"] == id) return r;
    }
    return json();
  };
  const json b_runs = settled(b + "/runs");
  ASSERT_EQ(b_runs["runs"].size(), 2u);
  std::set<std::string> shared;
  for (const auto& r : b_runs["runs"]) shared.insert(r["runId"].get<std::string>());
  for (const auto& id : shared) {
    ASSERT_EQ(run_of(settled(a + "/runs"), id).value("state", ""), "queued") << id;
  }

  // A lease: runs of both sweeps change state.
  FakeWorker worker(cluster.address());
  ASSERT_NO_FATAL_FAILURE(worker.Register(8));
  const std::vector<v1::RunLease> leases = worker.LeaseAll();
  ASSERT_EQ(leases.size(), 8u);
  for (const auto& id : shared) {
    EXPECT_EQ(run_of(get(a + "/runs"), id).value("state", ""), "leased") << id;
    EXPECT_EQ(run_of(get(b + "/runs"), id).value("state", ""), "leased") << id;
  }

  // An epoch of a run both sweeps hold: in the curves of each.
  const v1::RunLease* in_both = nullptr;
  const v1::RunLease* in_a = nullptr;
  for (const auto& lease : leases) {
    (shared.count(lease.run_id()) ? in_both : in_a) = &lease;
  }
  ASSERT_TRUE(in_both && in_a);
  for (const auto& path : {a + "/curves", b + "/curves", a}) settled(path);
  ASSERT_NO_FATAL_FAILURE(worker.Report(*in_both, 1, 0.5));
  EXPECT_EQ(run_of(get(a + "/curves"), in_both->run_id())["points"].size(), 1u);
  EXPECT_EQ(run_of(get(b + "/curves"), in_both->run_id())["points"].size(), 1u);
  EXPECT_EQ(get(a)["sweep"]["epochsDone"], "1");  // an int64: a string in JSON

  // A run of `a` alone finishes: `a`'s summary and results show it; `b` stood still.
  const json results_before = settled(a + "/results");
  settled(a);
  settled(b + "/runs");
  for (int e = 1; e <= 4; ++e) ASSERT_NO_FATAL_FAILURE(worker.Report(*in_a, e, 0.4));
  ASSERT_NO_FATAL_FAILURE(worker.Complete(*in_a));
  EXPECT_EQ(get(a)["sweep"]["counts"]["succeeded"], 1);
  EXPECT_NE(get(a + "/results"), results_before);
  EXPECT_EQ(run_of(get(a + "/runs"), in_a->run_id()).value("state", ""), "succeeded");
  const double before_b = hits();
  get(b + "/runs");
  EXPECT_EQ(hits(), before_b + 1) << "b's runs did not change: from the cache";

  // A cancel of `a`.
  ASSERT_FALSE(settled(a)["sweep"]["cancelRequested"].get<bool>());
  cluster.Cli({"cancel", a});
  EXPECT_TRUE(get(a)["sweep"]["cancelRequested"].get<bool>());
}

}  // namespace
}  // namespace resweep
