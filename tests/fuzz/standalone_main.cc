// main() for the fuzz harness without libFuzzer, e.g. under valgrind:
//   ops_driver [-runs=N] [-seed=S] [FILE_OR_DIR ...]
// replays every file given (directories: every file in them, sorted), then N inputs of 0 to 512
// random bytes from a generator seeded with S. Exit status 0 when every input ran; an input that breaks
// an invariant aborts, as under libFuzzer.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> ListFiles(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    std::fprintf(stderr, "ops_driver: cannot stat %s\n", path.c_str());
    std::exit(2);
  }
  if (!S_ISDIR(info.st_mode)) {
    return {path};
  }
  std::vector<std::string> files;
  if (DIR* dir = opendir(path.c_str())) {
    while (const dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != ".." && name[0] != '.') {
        files.push_back(path + "/" + name);
      }
    }
    closedir(dir);
  }
  std::sort(files.begin(), files.end());
  return files;
}

void RunOne(const std::vector<uint8_t>& bytes) {
  // A copy of exactly the input's size, so that reads past its end are caught like under libFuzzer.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size()]);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  LLVMFuzzerTestOneInput(copy.get(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  long runs = 0;
  unsigned long long seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "-runs=", 6) == 0) {
      runs = std::strtol(argv[i] + 6, nullptr, 10);
    } else if (std::strncmp(argv[i], "-seed=", 6) == 0) {
      seed = std::strtoull(argv[i] + 6, nullptr, 10);
    } else {
      const std::vector<std::string> found = ListFiles(argv[i]);
      files.insert(files.end(), found.begin(), found.end());
    }
  }
  for (const std::string& file : files) {
    std::ifstream stream(file, std::ios::binary);
    RunOne(std::vector<uint8_t>(std::istreambuf_iterator<char>(stream), {}));
  }
  uint64_t state = seed;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (long r = 0; r < runs; ++r) {
    std::vector<uint8_t> bytes(next() % 513);
    for (uint8_t& b : bytes) {
      b = static_cast<uint8_t>(next() >> 56);
    }
    RunOne(bytes);
  }
  std::printf("ops_driver: ran %zu files and %ld random inputs\n", files.size(), runs);
  return 0;
}
