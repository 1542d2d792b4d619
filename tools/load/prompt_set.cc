#include "tools/load/prompt_set.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "tools/load/word_list.h"

namespace llama::load {
namespace {

namespace v1 = ::llamachat::v1;

// Template tokens the estimate adds for each part of a LLaMA 2 chat prompt (BOS, [INST], [/INST], EOS, <<SYS>>).
constexpr int kTokensPerTurnPair = 10;
constexpr int kSystemTemplateTokens = 12;
constexpr int kSystemPromptTokens[] = {24, 48, 96, 160};
constexpr double kTurnProbabilities[] = {0.45, 0.25, 0.18, 0.12};  // 1..4 user turns

struct LogNormal {
  double median;
  double sigma;
  int min_tokens;
  int max_tokens;
};
constexpr LogNormal kUserTurn{60, 1.1, 4, 1024};
constexpr LogNormal kAssistantTurn{160, 0.8, 8, 1024};
constexpr LogNormal kOutput{220, 0.9, 8, 1024};

uint64_t Mix(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int Draw(const LogNormal& d, double scale, std::mt19937_64& rng) {
  std::lognormal_distribution<double> dist(std::log(d.median), d.sigma);
  const double tokens = std::clamp(dist(rng), static_cast<double>(d.min_tokens), static_cast<double>(d.max_tokens)) * scale;
  return std::max(1, static_cast<int>(std::lround(tokens)));
}

int WordsFor(int tokens, double tokens_per_word) {
  return std::max(1, static_cast<int>(std::lround(tokens / tokens_per_word)));
}

// num_words words of sentences (5 to 14 words each, capitalised, ending in a full stop).
std::string Sentences(int num_words, std::mt19937_64& rng) {
  const auto words = Words();
  std::uniform_int_distribution<size_t> pick(0, words.size() - 1);
  std::uniform_int_distribution<int> sentence_length(5, 14);
  std::string text;
  int left_in_sentence = 0;
  for (int i = 0; i < num_words; ++i) {
    const bool sentence_start = left_in_sentence == 0;
    if (sentence_start) left_in_sentence = sentence_length(rng);
    std::string word(words[pick(rng)]);
    if (sentence_start) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
    if (!text.empty()) text += ' ';
    text += word;
    if (--left_in_sentence == 0 || i + 1 == num_words) text += '.';
  }
  return text;
}

void AddMessage(v1::ChatRequest* request, v1::Role role, std::string content) {
  v1::Message* m = request->add_messages();
  m->set_role(role);
  m->set_content(std::move(content));
}

void SetSampling(const PromptSetOptions& options, int index, int max_tokens, v1::ChatRequest* request) {
  v1::SamplingParams* sampling = request->mutable_sampling();
  sampling->set_temperature(options.temperature);
  sampling->set_seed(Mix(options.seed ^ 0x5EED, index));
  sampling->set_max_tokens(max_tokens);
  sampling->set_ignore_eos(options.ignore_eos);
  request->set_num_candidates(options.num_candidates);
  if (options.segment_tokens >= 0) request->set_segment_tokens(options.segment_tokens);
  request->set_include_token_ids(options.include_token_ids);
  request->set_request_id(absl::StrCat("load-", index));
}

// The lengths of one dialog of the chat mix, in tokens; pairs before `first` were dropped to fit the context.
struct DialogLengths {
  int system = 0;                    // which system prompt
  std::vector<int> user;             // [turns]
  std::vector<int> assistant;        // [turns - 1]
  int output = 0;
  int first = 0;

  int turns() const { return static_cast<int>(user.size()); }
  int PromptTokens(const std::vector<int>& system_tokens) const {
    int n = kSystemTemplateTokens + system_tokens[system];
    for (int t = first; t < turns(); ++t) n += kTokensPerTurnPair + user[t] + (t + 1 < turns() ? assistant[t] : 0);
    return n;
  }
};

DialogLengths DrawLengths(const PromptSetOptions& options, int num_system_prompts, std::mt19937_64& rng) {
  DialogLengths d;
  d.system = std::uniform_int_distribution<int>(0, num_system_prompts - 1)(rng);
  std::discrete_distribution<int> turns_dist(std::begin(kTurnProbabilities), std::end(kTurnProbabilities));
  const int turns = turns_dist(rng) + 1;
  for (int t = 0; t < turns; ++t) {
    d.user.push_back(Draw(kUserTurn, options.length_scale, rng));
    if (t + 1 < turns) d.assistant.push_back(Draw(kAssistantTurn, options.length_scale, rng));
  }
  d.output = options.output_tokens > 0 ? options.output_tokens : Draw(kOutput, options.length_scale, rng);
  return d;
}

// Shortens d to fit `context` as the server would: oldest pairs first, then the reply, then the last user turn.
// Returns whether anything was shortened.
bool FitToContext(int context, const std::vector<int>& system_tokens, DialogLengths* d) {
  if (context <= 0 || d->PromptTokens(system_tokens) + d->output <= context) return false;
  while (d->first + 1 < d->turns() && d->PromptTokens(system_tokens) + d->output > context) ++d->first;
  const int prompt = d->PromptTokens(system_tokens);
  if (prompt + d->output > context) d->output = std::max(1, context - prompt);
  const int over = d->PromptTokens(system_tokens) + d->output - context;
  if (over > 0) d->user.back() = std::max(1, d->user.back() - over);
  return true;
}

struct MixDialog {
  v1::ChatRequest request;
  int estimated_prompt_tokens = 0;
  int output_tokens = 0;
  int turns = 0;
  bool fitted = false;
};

// One dialog of the chat mix (see the header), fitted to the context.
MixDialog DrawDialog(const PromptSetOptions& options, const std::vector<std::string>& system_prompts,
                     const std::vector<int>& system_tokens, int index) {
  std::mt19937_64 rng(Mix(options.seed, index));
  DialogLengths lengths = DrawLengths(options, static_cast<int>(system_prompts.size()), rng);
  MixDialog dialog;
  dialog.fitted = FitToContext(options.context_length, system_tokens, &lengths);
  AddMessage(&dialog.request, v1::ROLE_SYSTEM, system_prompts[lengths.system]);
  for (int t = lengths.first; t < lengths.turns(); ++t) {
    AddMessage(&dialog.request, v1::ROLE_USER, Sentences(WordsFor(lengths.user[t], options.tokens_per_word), rng));
    if (t + 1 < lengths.turns()) {
      AddMessage(&dialog.request, v1::ROLE_ASSISTANT,
                 Sentences(WordsFor(lengths.assistant[t], options.tokens_per_word), rng));
    }
  }
  dialog.turns = lengths.turns() - lengths.first;
  dialog.output_tokens = lengths.output;
  dialog.estimated_prompt_tokens = lengths.PromptTokens(system_tokens);
  SetSampling(options, index, dialog.output_tokens, &dialog.request);
  return dialog;
}

// Appends filler words (one token each) or drops trailing words until the counter says `target`.
absl::Status FitExactly(int target, double tokens_per_word, const TokenCounter& counter, std::mt19937_64& rng,
                        v1::ChatRequest* request) {
  std::string& text = *request->mutable_messages(0)->mutable_content();
  const auto fillers = FillerWords();
  for (int attempt = 0; attempt < 16; ++attempt) {
    ASSIGN_OR_RETURN(const int n, counter(*request));
    if (n == target) return absl::OkStatus();
    if (n < target) {
      for (int i = 0; i < target - n; ++i) absl::StrAppend(&text, " ", fillers[rng() % fillers.size()]);
      continue;
    }
    // Too long: drop about the excess in words (at least one), keeping at least one word.
    const int drop = std::max(1, static_cast<int>((n - target) / tokens_per_word));
    for (int i = 0; i < drop; ++i) {
      const size_t space = text.rfind(' ');
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--input_tokens ", target, " is shorter than the chat template around a one-word message (", n,
            " tokens)"));
      }
      text.resize(space);
    }
  }
  return absl::InternalError(absl::StrCat("could not build a prompt of exactly ", target, " tokens"));
}

absl::Status BuildFixed(const PromptSetOptions& options, int count, const TokenCounter& counter,
                        std::vector<v1::ChatRequest>* requests) {
  for (int i = 0; i < count; ++i) {
    std::mt19937_64 rng(Mix(options.seed, i));
    v1::ChatRequest request;
    const int words = WordsFor(std::max(1, options.input_tokens - kTokensPerTurnPair), options.tokens_per_word);
    AddMessage(&request, v1::ROLE_USER, Sentences(words, rng));
    SetSampling(options, i, options.output_tokens, &request);
    if (counter) RETURN_IF_ERROR(FitExactly(options.input_tokens, options.tokens_per_word, counter, rng, &request));
    requests->push_back(std::move(request));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PromptSet> PromptSet::Build(const PromptSetOptions& options, int count, const TokenCounter& counter) {
  if (count < 1) return absl::InvalidArgumentError("a prompt set needs at least one request");
  if (options.output_tokens > 0 && options.context_length > 0 && options.output_tokens >= options.context_length) {
    return absl::InvalidArgumentError(absl::StrCat("--output_tokens ", options.output_tokens,
                                                   " does not fit the server's context of ", options.context_length));
  }
  PromptSet set;
  PromptSetStats& stats = set.stats_;
  stats.num_requests = count;
  if (options.input_tokens > 0) {
    if (options.context_length > 0 && options.input_tokens + std::max(options.output_tokens, 1) > options.context_length) {
      return absl::InvalidArgumentError(absl::StrCat("--input_tokens ", options.input_tokens, " + --output_tokens ",
                                                     options.output_tokens, " exceed the server's context of ",
                                                     options.context_length));
    }
    RETURN_IF_ERROR(BuildFixed(options, count, counter, &set.requests_));
    stats.mean_prompt_tokens = options.input_tokens;
    stats.mean_output_tokens = options.output_tokens;
    stats.mean_turns = 1;
    stats.exact_prompt_lengths = static_cast<bool>(counter);
    return set;
  }
  std::mt19937_64 system_rng(Mix(options.seed, ~uint64_t{0}));
  std::vector<std::string> system_prompts;
  std::vector<int> system_tokens;
  for (int tokens : kSystemPromptTokens) {
    system_tokens.push_back(std::max(1, static_cast<int>(std::lround(tokens * options.length_scale))));
    system_prompts.push_back(Sentences(WordsFor(system_tokens.back(), options.tokens_per_word), system_rng));
  }
  for (int i = 0; i < count; ++i) {
    MixDialog dialog = DrawDialog(options, system_prompts, system_tokens, i);
    stats.mean_prompt_tokens += dialog.estimated_prompt_tokens / static_cast<double>(count);
    stats.mean_output_tokens += dialog.output_tokens / static_cast<double>(count);
    stats.mean_turns += dialog.turns / static_cast<double>(count);
    stats.num_fitted += dialog.fitted ? 1 : 0;
    set.requests_.push_back(std::move(dialog.request));
  }
  return set;
}

absl::StatusOr<double> MeasureTokensPerWord(const TokenCounter& counter, int context_length) {
  // As many words as fit the context comfortably (about half of it at ~1.3 tokens per word), at most 400.
  const int words = std::clamp(context_length > 0 ? (context_length - 20) / 3 : 400, 10, 400);
  std::mt19937_64 rng(12345);
  v1::ChatRequest one, many;
  AddMessage(&one, v1::ROLE_USER, Sentences(1, rng));
  AddMessage(&many, v1::ROLE_USER, Sentences(words, rng));
  ASSIGN_OR_RETURN(const int n_one, counter(one));
  ASSIGN_OR_RETURN(const int n_many, counter(many));
  return std::max(0.5, static_cast<double>(n_many - n_one) / (words - 1));
}

}  // namespace llama::load
