// Does the trainer learn on this device? Writes a small learnable data set in the
// CIFAR-10 binary format, trains ResNet-20 on it for a few epochs and exits non-zero
// unless the test error ends far below chance. Used by scripts/gpu-check.sh.
//
//   trainer_check [--device cuda:0] [--amp off|bf16|fp16] [--epochs 3]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/data_files.h"
#include "worker/libtorch_trainer.h"

namespace {

class PrintingContext : public resweep::RunContext {
 public:
  bool ShouldStop() const override { return false; }
  resweep::Status OnEpoch(const resweep::EpochReport& r) override {
    std::printf("epoch %d: train loss %.4f, train err %.2f%%, test err %.2f%%, %.0f img/s\n",
                r.epoch, r.train_loss, 100 * r.train_error, 100 * r.test_error, r.images_per_sec);
    last_error = r.test_error;
    return resweep::Status::Ok();
  }
  resweep::Status OnCheckpoint(int, int64_t, const std::string&) override {
    return resweep::Status::Ok();
  }
  double last_error = 1;
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each epoch's line shows, even if a crash follows
  std::string device = "cpu", amp = "off";
  int epochs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--device")
      device = argv[i + 1];
    else if (a == "--amp")
      amp = argv[i + 1];
    else if (a == "--epochs")
      epochs = std::atoi(argv[i + 1]);
  }
  resweep::testing::TempDir dir;
  resweep::testing::WriteCifarDir(dir.path(), 1000, 1000, /*learnable=*/true);
  resweep::DatasetCache cache({.data_root = "/", .allow_absolute_paths = true});
  auto trainer = resweep::MakeLibTorchTrainer(torch::Device(device), &cache);
  resweep::RunConfig c;
  c.dataset.path = dir.path();
  c.model.depth_n = 3;
  c.train.epochs = epochs;
  c.train.batch_size = 128;
  c.train.schedule.milestones = {static_cast<int64_t>(epochs)};
  c.train.amp = amp;
  PrintingContext ctx;
  auto outcome = trainer->Train(c, 0, {}, &ctx);
  if (!outcome.ok()) {
    std::printf("trainer_check FAILED: %s\n", outcome.status().ToString().c_str());
    return 1;
  }
  const bool learned = ctx.last_error < 0.5;  // chance: 90%
  std::printf("trainer_check %s on %s (amp %s): final test error %.2f%%\n",
              learned ? "PASSED" : "FAILED", device.c_str(), amp.c_str(), 100 * ctx.last_error);
  return learned ? 0 : 1;
}
