//! Raw command-line arguments (clap derive). They are checked and turned
//! into the library's option structs once, in `cli::config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "papermap",
    version,
    about = "Related papers and topic reports for your own paper collection, fully offline",
    long_about = "papermap reads your paper collection (BibTeX, RIS, CSV/TSV, JSON, arXiv/OpenAlex/Semantic \
Scholar dumps, scraped listings), embeds title + abstract with a local model, and answers \
\"which papers are related to this one?\" and \"what topics does my collection have?\".\n\n\
Typical use:\n  papermap add refs.bib scopus.ris\n  papermap related \"Attention Is All You Need\"\n  \
papermap topics\n  papermap report --out report/\n  \
papermap serve   (then open http://127.0.0.1:8642/)"
)]
pub struct Cli {
    /// Library directory (created on first `add`).
    #[arg(
        long,
        short = 'L',
        global = true,
        env = "PAPERMAP_LIBRARY",
        default_value = "papermap-library"
    )]
    pub library: PathBuf,

    /// Print less (no progress bar, no per-file summary).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Embedding backend: the real model, or a deterministic hashing
    /// embedder for tests.
    #[arg(long, global = true, value_enum, default_value_t = EmbedderArg::Minilm, hide = true)]
    pub embedder: EmbedderArg,

    /// Seconds to wait for another papermap writing the same library.
    #[arg(long, global = true, default_value_t = 30)]
    pub lock_wait: u64,

    /// Libraries with at least this many papers are searched through an
    /// HNSW graph (built by `add`); smaller ones exactly.
    #[arg(long, global = true, env = "PAPERMAP_HNSW_THRESHOLD", default_value_t = papermap::index::DEFAULT_HNSW_THRESHOLD)]
    pub hnsw_threshold: usize,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add papers from files (format detected), embed the new ones, update the index.
    Add(AddArgs),
    /// Finish embedding and indexing (after `add --no-embed` or an interrupted run).
    Embed(EmbedArgs),
    /// Papers related to a paper (id, DOI, arXiv id, title), a free text, or a set of papers.
    Related(RelatedArgs),
    /// Group the library into topics and list them.
    Topics(TopicArgs),
    /// Write topic reports: JSON, CSV, Markdown, HTML map, per-topic BibTeX.
    Report(ReportArgs),
    /// Show what the library holds and whether derived files are current.
    Status,
    /// List papers: id, year, whether a vector is cached, title (tab-separated).
    List,
    /// Verify every file of the library; with --repair, salvage a damaged one.
    Check(CheckArgs),
    /// Remove papers (by id, DOI or arXiv id) from the library.
    Remove(RemoveArgs),
    /// Measure papermap against your own ground truth.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Serve the library as a local web page and JSON API (read-only).
    Serve(ServeArgs),
    /// One paper: its fields, links, related papers, earlier and later work.
    Show(ShowArgs),
    /// Score papers not in the library (e.g. today's arXiv) against it.
    Match(MatchArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A paper id, DOI, arXiv id or title.
    pub paper: String,
    /// Papers per list (related, earlier, later).
    #[arg(short, default_value_t = 5)]
    pub k: usize,
    /// Print JSON (the server's `/api/paper` answer) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. The default is reachable from this computer
    /// only; another address (e.g. 0.0.0.0) opens the library to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = papermap::serve::DEFAULT_PORT)]
    pub port: u16,
    /// HNSW search breadth, as for `related --ef`.
    #[arg(long, default_value_t = papermap::index::HnswParams::default().ef_search)]
    pub ef: usize,
    /// Requests computed at once (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// How often to check the library for changes made by another
    /// papermap, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Related papers against lists of relevant papers: nDCG@10, MAP@100,
    /// recall@10, P@1.
    Related(EvalRelatedArgs),
    /// Topics against labels: V-measure, NMI, ARI.
    Topics(EvalTopicsArgs),
}

#[derive(Debug, Args)]
pub struct EvalRelatedArgs {
    /// JSON lines `{"id": ..., "relevant": [ids]}` (`cites` also accepted).
    #[arg(long)]
    pub queries: PathBuf,
    /// Also measure every hybrid weight from 0 to 1 in steps of 0.05.
    #[arg(long)]
    pub sweep: bool,
    #[command(flatten)]
    pub scoring: ScoringArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalTopicsArgs {
    /// JSON lines `{"id": ..., "label": ...}`.
    #[arg(long)]
    pub labels: PathBuf,
    /// Number of topics (default: the number of distinct labels).
    #[arg(long, short)]
    pub k: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How related papers are scored and filtered in time: shared by `related`
/// and `eval related`.
#[derive(Debug, Args)]
pub struct ScoringArgs {
    /// hybrid, dense, lexical (TF-IDF cosine) or bm25.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    pub mode: ModeArg,
    /// Weight of the embedding score in hybrid mode (0..1).
    #[arg(long, default_value_t = papermap::query::DEFAULT_WEIGHT)]
    pub weight: f32,
    /// Only papers first published no later than the query paper (same
    /// month counts): what it builds on. Undated papers are kept and marked.
    #[arg(long, conflicts_with = "later")]
    pub prior: bool,
    /// Only papers first published no earlier than the query paper: what
    /// built on it.
    #[arg(long)]
    pub later: bool,
    /// Hybrid bonus for papers published no later than the query paper
    /// (0..1; 0 turns the lean off).
    #[arg(long, default_value_t = papermap::query::DEFAULT_EARLIER_LEAN)]
    pub earlier_lean: f32,
    /// With --prior: hybrid bonus per ln(1 + years) a paper precedes the
    /// query, for established work (0..1; 0 turns it off).
    #[arg(long, default_value_t = papermap::query::DEFAULT_AGE_LEAN)]
    pub age_lean: f32,
    /// Hybrid bonus times the share of a paper's title words (by idf) that
    /// the query mentions: work a paper names (0..1; 0 turns it off).
    #[arg(long, default_value_t = papermap::query::DEFAULT_TITLE_LEAN)]
    pub title_lean: f32,
}

#[derive(Debug, Args)]
pub struct EmbedOpts {
    /// Threads for the model (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Texts per model call.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Files to read: .bib, .ris, .csv, .tsv, .json, .jsonl, listings (.txt),
    /// or Zotero's database (~/Zotero/zotero.sqlite, read while Zotero runs).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Force the input format: bibtex, ris, csv, tsv, json, listing, zotero.
    #[arg(long)]
    pub format: Option<String>,
    /// Stop at the first bad record of a file and store nothing from it.
    #[arg(long)]
    pub strict: bool,
    /// CSV/TSV columns, e.g. "title=Article Title,abstract=Summary".
    #[arg(long)]
    pub columns: Option<String>,
    /// Only ingest; embed later with `papermap embed`.
    #[arg(long)]
    pub no_embed: bool,
    /// Zotero database: only this collection ("Thesis/Chapter 2") and its
    /// subcollections.
    #[arg(long, value_name = "PATH")]
    pub collection: Option<String>,
    /// Keep running and read the files again whenever they change (e.g. a
    /// Better BibTeX automatic export); edited entries replace their old
    /// version and only changed text is embedded. Ctrl-C ends it.
    #[arg(long, conflicts_with = "no_embed")]
    pub watch: bool,
    /// With --watch: how often to look at the files, in milliseconds.
    #[arg(long, default_value_t = 1000, requires = "watch", hide = true)]
    pub poll_ms: u64,
    #[command(flatten)]
    pub embed: EmbedOpts,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub embed: EmbedOpts,
}

#[derive(Debug, Args)]
pub struct RelatedArgs {
    /// A paper id, DOI, arXiv id or title, or free text. Several papers make a
    /// reading list: "more like these".
    pub query: Vec<String>,
    /// "...but not like these" papers (id, DOI, arXiv id or title).
    #[arg(long = "not", value_name = "PAPER")]
    pub negative: Vec<String>,
    /// Number of results.
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    #[command(flatten)]
    pub scoring: ScoringArgs,
    /// Only papers from this year on.
    #[arg(long)]
    pub since: Option<i32>,
    /// Only papers up to this year.
    #[arg(long)]
    pub until: Option<i32>,
    /// A file of paper ids (one per line) never to return, e.g. papers already read.
    #[arg(long)]
    pub exclude: Option<PathBuf>,
    /// Batch mode: a file of queries (text lines or JSON lines); JSON lines out.
    #[arg(long, conflicts_with = "query")]
    pub batch: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// HNSW search breadth (large libraries only): higher is slower and
    /// closer to exact.
    #[arg(long, default_value_t = papermap::index::HnswParams::default().ef_search)]
    pub ef: usize,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub action: Option<TopicAction>,
    /// Number of topics (default: the pinned k, else chosen by stability).
    /// Another k than the pinned one is an exploratory run: the stored
    /// topics, their ids and names are left as they are.
    #[arg(long, short)]
    pub k: Option<usize>,
    /// Random seed (recorded in every output).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Cluster the whole library again instead of letting papers added
    /// since the last clustering join their nearest topics.
    #[arg(long)]
    pub recluster: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Editing the stored topics (names and merges survive later runs).
#[derive(Debug, Subcommand)]
pub enum TopicAction {
    /// Name a topic: `papermap topics rename 12 "diffusion models"`.
    Rename { id: u32, name: String },
    /// Merge topics into the first: `papermap topics merge 4 9`.
    Merge {
        into: u32,
        #[arg(required = true)]
        others: Vec<u32>,
    },
    /// Pin the number of topics (`auto` to let papermap choose again).
    Pin { k: String },
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Formats (comma-separated), or all.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub format: Vec<FormatArg>,
    /// Output: a directory (several formats), or a file (one format; for
    /// bibtex, a directory of per-topic files).
    #[arg(long, default_value = "papermap-report")]
    pub out: PathBuf,
    #[arg(long, short)]
    pub k: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Cluster the whole library again (see `topics --recluster`).
    #[arg(long)]
    pub recluster: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Keep every intact paper of a damaged library and list the lost ones.
    #[arg(long)]
    pub repair: bool,
}

/// `--embedder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedderArg {
    Minilm,
    Hash,
}

impl From<EmbedderArg> for papermap::app::EmbedderKind {
    fn from(e: EmbedderArg) -> Self {
        match e {
            EmbedderArg::Minilm => Self::MiniLm,
            EmbedderArg::Hash => Self::Hash,
        }
    }
}

/// `--mode` of `related` and `eval related`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Embedding cosine and TF-IDF cosine fused (default).
    Hybrid,
    /// Embedding cosine only.
    Dense,
    /// TF-IDF cosine only.
    Lexical,
    /// BM25 with the whole query text (kept for comparison).
    Bm25,
}

impl ModeArg {
    pub fn name(self) -> &'static str {
        match self {
            ModeArg::Hybrid => "hybrid",
            ModeArg::Dense => "dense",
            ModeArg::Lexical => "lexical",
            ModeArg::Bm25 => "bm25",
        }
    }
}

impl From<ModeArg> for papermap::query::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Hybrid => Self::Hybrid,
            ModeArg::Dense => Self::Dense,
            ModeArg::Lexical => Self::Lexical,
            ModeArg::Bm25 => Self::Bm25,
        }
    }
}

/// `report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Every format below.
    All,
    Json,
    Csv,
    #[value(alias = "markdown")]
    Md,
    Html,
    /// One .bib file per topic.
    #[value(alias = "bib")]
    Bibtex,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Papers to remove: ids, DOIs or arXiv ids (never titles).
    pub ids: Vec<String>,
    /// A file of ids, DOIs or arXiv ids, one per line (`#` starts a comment).
    #[arg(long)]
    pub file: Vec<PathBuf>,
    /// Remove the papers that are found and list the names that are not
    /// (without it, one unknown name removes nothing).
    #[arg(long)]
    pub ignore_missing: bool,
}

/// `papermap match FILE...`: what is new for this library.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Files of incoming papers, in any format `add` reads (e.g. the arXiv
    /// API as JSON lines, an OAI snapshot, a journal alert as RIS).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Force the input format: bibtex, ris, csv, tsv, json, listing, zotero.
    #[arg(long)]
    pub format: Option<String>,
    /// CSV/TSV columns, e.g. "title=Article Title,abstract=Summary".
    #[arg(long)]
    pub columns: Option<String>,
    /// Stop at the first bad record of a file.
    #[arg(long)]
    pub strict: bool,
    /// Papers listed (best first).
    #[arg(long, default_value_t = 50)]
    pub top: usize,
    /// Only papers scoring at least this.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Closest library papers averaged into the score (1: the best match).
    #[arg(long, default_value_t = papermap::triage::DEFAULT_NEIGHBOURS)]
    pub neighbours: usize,
    /// How similarity is scored (as `related --mode`).
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    pub mode: ModeArg,
    /// Weight of the embedding score in hybrid mode (0..1).
    #[arg(long, default_value_t = papermap::query::DEFAULT_WEIGHT)]
    pub weight: f32,
    /// Match only against these library papers (id, DOI, arXiv id, title).
    #[arg(long, value_name = "PAPER", num_args = 1..)]
    pub like: Vec<String>,
    /// Papers close to these library papers score lower.
    #[arg(long = "not", value_name = "PAPER", num_args = 1..)]
    pub not: Vec<String>,
    /// Match only against library papers in this Zotero collection (and below).
    #[arg(long, value_name = "PATH")]
    pub collection: Option<String>,
    /// A word or phrase every listed paper must contain (repeatable).
    #[arg(long, value_name = "WORDS")]
    pub require: Vec<String>,
    /// Leave out papers containing this word or phrase (repeatable).
    #[arg(long, value_name = "WORDS")]
    pub exclude_terms: Vec<String>,
    /// Print JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print Markdown.
    #[arg(long)]
    pub markdown: bool,
    /// Also write the digest as one self-contained HTML file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Add the listed papers to the library (needs --threshold).
    #[arg(long, requires = "threshold")]
    pub add: bool,
    /// Model threads (`--threads`) also bound the threads scoring papers.
    #[command(flatten)]
    pub embed: EmbedOpts,
}
