//! The Zotero desktop database (`zotero.sqlite`), read directly.
//!
//! Zotero keeps its database open (with an exclusive lock) while it runs, so
//! the file and its journal (`-journal` or `-wal`) are copied to a private
//! temp folder first, the copy is checked for a change during copying, and
//! only the copy is opened: the user's database is never written or locked.
//!
//! Schemas of Zotero 5, 6 and 7 share what is read here: `items` with
//! `itemTypes`, the entity-attribute-value triple `itemData` / `fields` /
//! `itemDataValues`, `creators` (first/last name, or one field) in
//! `itemCreators.orderIndex` order, `collections` / `collectionItems`, the
//! trash (`deletedItems`), and the schema version in `version`. Zotero 4 kept
//! names in a separate `creatorData` table; it is refused with a clear error.
//!
//! Regular items only: attachments, notes and annotations are not papers,
//! items in the trash and in feed libraries are skipped. The item key is the
//! identity: each paper's id is `zotero:KEY` (`zotero:L<libraryID>:KEY` in a
//! group library), so re-adding updates the stored record in place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::{Parsed, normalize};
use crate::error::{Error, Result};
use crate::paper::Paper;

/// The 16 bytes every SQLite 3 database starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Oldest `userdata` schema version read: Zotero 5.0 moved creator names into
/// `creators` itself; older databases must be opened once in Zotero 5+.
pub const OLDEST_USERDATA: i64 = 80;

/// Item types that are not papers.
const NOT_PAPERS: &[&str] = &["attachment", "note", "annotation"];

/// Venue fields, most specific first (Zotero names the base field `publicationTitle`
/// differently per item type).
const VENUE_FIELDS: &[&str] = &[
    "publicationTitle",
    "proceedingsTitle",
    "bookTitle",
    "conferenceName",
    "websiteTitle",
    "blogTitle",
    "forumTitle",
    "encyclopediaTitle",
    "dictionaryTitle",
    "programTitle",
    "university",
    "institution",
    "repository",
    "publisher",
    "company",
];

/// Creator roles that are not the work's authors (kept only when an item
/// has no other creators, e.g. an edited book).
const SECONDARY_CREATORS: &[&str] = &[
    "editor",
    "seriesEditor",
    "translator",
    "contributor",
    "reviewedAuthor",
    "bookAuthor",
    "commenter",
    "counsel",
    "recipient",
    "attorneyAgent",
    "castMember",
    "guest",
    "producer",
    "scriptwriter",
    "wordsBy",
    "cosponsor",
    "interviewer",
];

/// Options for reading a Zotero database.
#[derive(Debug, Clone, Default)]
pub struct ZoteroOptions {
    /// Only items in this collection path ("Thesis/Chapter 2") or its
    /// subcollections.
    pub collection: Option<String>,
}

/// What a Zotero database held, for the ingest summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoteroSummary {
    /// `userdata` schema version and, when recorded, the Zotero version.
    pub schema: String,
    pub regular: usize,
    pub not_papers: usize,
    pub trashed: usize,
    pub feed_items: usize,
    /// Regular items outside the `--collection` asked for.
    pub outside_collection: usize,
    pub collections: usize,
    /// Ids (`zotero:KEY`) of every item read: what a re-add compares the
    /// library against to find deletions.
    pub ids: Vec<String>,
    /// Ids of items in the trash (they are deleted as far as papermap goes).
    pub trashed_ids: Vec<String>,
}

/// True when `path` is an SQLite database (the only SQLite input papermap
/// reads is Zotero's).
pub fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == SQLITE_MAGIC
}

/// Reads the regular items of the Zotero database at `path` into `sink`.
pub fn read(
    path: &Path,
    opts: &ZoteroOptions,
    sink: &mut dyn FnMut(Parsed),
) -> Result<ZoteroSummary> {
    let snapshot = Snapshot::take(path)?;
    let conn = Connection::open_with_flags(
        &snapshot.db,
        // Read-write on the private copy only: a hot journal or a WAL must be
        // replayed into it to see Zotero's last committed state.
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| input(path, format!("cannot open the database copy: {e}")))?;
    let db = |e: rusqlite::Error| input(path, format!("cannot read the Zotero database: {e}"));
    conn.execute_batch("PRAGMA query_only = 1;").map_err(db)?;
    let schema = check_schema(&conn, path)?;
    let types_table = pick(&conn, "itemTypesCombined", "itemTypes").map_err(db)?;
    let fields_table = pick(&conn, "fieldsCombined", "fields").map_err(db)?;

    let deleted: HashSet<i64> = ids_of(&conn, "SELECT itemID FROM deletedItems").map_err(db)?;
    // Zotero 5+ names a library's kind in `type`; older schemas `libraryType`.
    let kind_column = if has_column(&conn, "libraries", "type").map_err(db)? {
        Some("type")
    } else if has_column(&conn, "libraries", "libraryType").map_err(db)? {
        Some("libraryType")
    } else {
        None
    };
    let feeds: HashSet<i64> = match kind_column {
        Some(c) => ids_of(
            &conn,
            &format!("SELECT libraryID FROM libraries WHERE {c} = 'feed'"),
        )
        .map_err(db)?,
        None => HashSet::new(),
    };
    let user_library: Option<i64> = match kind_column {
        Some(c) => conn
            .query_row(
                &format!(
                    "SELECT libraryID FROM libraries WHERE {c} = 'user' ORDER BY libraryID LIMIT 1"
                ),
                [],
                |r| r.get(0),
            )
            .ok(),
        None => Some(1),
    };

    let colls = Collections::load(&conn).map_err(db)?;
    let wanted: Option<HashSet<i64>> = match &opts.collection {
        None => None,
        Some(name) => Some(colls.subtree(name).ok_or_else(|| {
            let mut known: Vec<&str> = colls.paths.values().map(String::as_str).collect();
            known.sort_unstable();
            input(
                path,
                format!(
                    "no collection named '{name}' (collections: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?),
    };

    // Items, in itemID order for a stable result.
    let mut items: Vec<(i64, String, Option<i64>, String)> = Vec::new();
    {
        let sql = format!(
            "SELECT i.itemID, i.key, i.libraryID, t.typeName FROM items i \
             JOIN {types_table} t ON t.itemTypeID = i.itemTypeID ORDER BY i.itemID"
        );
        let mut st = conn.prepare(&sql).map_err(db)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(db)?;
        for row in rows {
            items.push(row.map_err(db)?);
        }
    }

    // Type-specific fields stand for base fields (a case's `caseName` is its
    // title, a statute's `dateEnacted` its date): each value is also filed
    // under its base field's name, unless the item has that field itself.
    let mut base_of: HashMap<(i64, i64), String> = HashMap::new();
    if let Some(mappings) =
        pick_existing(&conn, &["baseFieldMappingsCombined", "baseFieldMappings"]).map_err(db)?
    {
        let sql = format!(
            "SELECT m.itemTypeID, m.fieldID, f.fieldName FROM {mappings} m \
             JOIN {fields_table} f ON f.fieldID = m.baseFieldID"
        );
        let mut st = conn.prepare(&sql).map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (kind, field, base) = row.map_err(db)?;
            base_of.insert((kind, field), base);
        }
    }
    let mut fields: HashMap<i64, HashMap<String, String>> = HashMap::new();
    let mut based: Vec<(i64, String, String)> = Vec::new();
    {
        let sql = format!(
            "SELECT d.itemID, f.fieldName, v.value, i.itemTypeID, d.fieldID FROM itemData d \
             JOIN items i ON i.itemID = d.itemID \
             JOIN {fields_table} f ON f.fieldID = d.fieldID \
             JOIN itemDataValues v ON v.valueID = d.valueID"
        );
        let mut st = conn.prepare(&sql).map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Value>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (item, name, value, kind, field) = row.map_err(db)?;
            if let Some(v) = text_of(value) {
                if let Some(base) = base_of.get(&(kind, field)) {
                    based.push((item, base.clone(), v.clone()));
                }
                fields.entry(item).or_default().insert(name, v);
            }
        }
    }
    for (item, base, v) in based {
        fields.entry(item).or_default().entry(base).or_insert(v);
    }

    let mut creators: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    {
        let mut st = conn
            .prepare(
                "SELECT ic.itemID, c.firstName, c.lastName, c.fieldMode, ct.creatorType \
                 FROM itemCreators ic JOIN creators c ON c.creatorID = ic.creatorID \
                 LEFT JOIN creatorTypes ct ON ct.creatorTypeID = ic.creatorTypeID \
                 ORDER BY ic.itemID, ic.orderIndex",
            )
            .map_err(db)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (item, first, last, mode, role) = row.map_err(db)?;
            let first = first.unwrap_or_default().trim().to_string();
            let last = last.unwrap_or_default().trim().to_string();
            let name = if mode == Some(1) || first.is_empty() {
                // A single-field name ("World Health Organization", "孔子").
                if last.is_empty() { first } else { last }
            } else if last.is_empty() {
                first
            } else {
                format!("{last}, {first}")
            };
            if !name.is_empty() {
                creators
                    .entry(item)
                    .or_default()
                    .push((role.unwrap_or_default(), name));
            }
        }
    }

    let mut summary = ZoteroSummary {
        schema,
        collections: colls.paths.len(),
        ..Default::default()
    };
    for (item_id, key, library, kind) in items {
        if NOT_PAPERS.contains(&kind.as_str()) {
            summary.not_papers += 1;
            continue;
        }
        // A missing library id is the user's own library.
        let library = library.or(user_library).unwrap_or(1);
        if feeds.contains(&library) {
            summary.feed_items += 1;
            continue;
        }
        let id = if Some(library) == user_library {
            format!("zotero:{key}")
        } else {
            format!("zotero:L{library}:{key}")
        };
        if deleted.contains(&item_id) {
            summary.trashed += 1;
            summary.trashed_ids.push(id);
            continue;
        }
        let in_colls = colls.of_item.get(&item_id);
        if let Some(w) = &wanted
            && !in_colls.is_some_and(|cs| cs.iter().any(|c| w.contains(c)))
        {
            summary.outside_collection += 1;
            continue;
        }
        summary.regular += 1;
        let f = fields.remove(&item_id).unwrap_or_default();
        let mut paper = to_paper(&f, creators.remove(&item_id).unwrap_or_default());
        paper.id = id.clone();
        paper.source = format!("{}#{key}", path.display());
        let mut cs: Vec<String> = in_colls
            .into_iter()
            .flatten()
            .filter_map(|c| colls.paths.get(c).cloned())
            .collect();
        cs.sort();
        cs.dedup();
        paper.collections = cs;
        summary.ids.push(id);
        sink(Parsed::Record {
            line: item_id.max(0) as u64,
            paper,
        });
    }
    Ok(summary)
}

fn input(path: &Path, reason: String) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        reason,
    }
}

/// An item's fields and creators as a `Paper` (not yet `finish`ed).
fn to_paper(f: &HashMap<String, String>, creators: Vec<(String, String)>) -> Paper {
    let get = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let extra = get("extra").unwrap_or("");
    // `extra` holds "Key: value" lines Zotero has no field for:
    // "arXiv: 1503.03900", "arXiv:1606.02360 [cs, math]", "_eprint: ...",
    // "DOI: 10...." (for item types without a DOI field).
    let extra_field = |names: &[&str]| {
        extra.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            names
                .iter()
                .any(|n| k.trim().eq_ignore_ascii_case(n))
                .then(|| v.trim().to_string())
        })
    };
    let arxiv = get("archiveID")
        .and_then(normalize::find_arxiv)
        .or_else(|| {
            extra_field(&["_eprint", "eprint", "arxiv id"])
                .and_then(|v| normalize::clean_arxiv(v.split_whitespace().next().unwrap_or("")))
        })
        .or_else(|| normalize::find_arxiv(extra));
    let (year, month) = get("date").map_or((None, None), zotero_date);
    let primary: Vec<String> = creators
        .iter()
        .filter(|(role, _)| !SECONDARY_CREATORS.contains(&role.as_str()))
        .map(|(_, n)| n.clone())
        .collect();
    let authors = if primary.is_empty() {
        creators.into_iter().map(|(_, n)| n).collect()
    } else {
        primary
    };
    Paper {
        title: get("title").unwrap_or_default().to_string(),
        abs: get("abstractNote").unwrap_or_default().to_string(),
        authors,
        year,
        month,
        doi: get("DOI")
            .map(str::to_string)
            .or_else(|| extra_field(&["DOI"])),
        arxiv,
        venue: VENUE_FIELDS.iter().find_map(|k| get(k)).map(str::to_string),
        url: get("url").map(str::to_string),
        ..Default::default()
    }
}

/// Zotero's multipart date: "2019-12-00 12/2019" (SQL part, then the text
/// the user typed); "0000-00-00 Spring 2019" when it could not parse it.
fn zotero_date(s: &str) -> (Option<i32>, Option<u8>) {
    let (sql, rest) = s.split_once(' ').unwrap_or((s, ""));
    let mut parts = sql.split('-');
    let y = parts.next().and_then(|y| y.parse::<i32>().ok());
    let m = parts.next().and_then(|m| m.parse::<u8>().ok());
    match (y, sql.len()) {
        (Some(y), 10) if y > 0 => (Some(y), m.filter(|m| (1..=12).contains(m))),
        _ => normalize::parse_date(if rest.is_empty() { s } else { rest })
            .map_or((None, None), |(y, m)| (Some(y), m)),
    }
}

/// Text of an `itemDataValues.value` (Zotero stores some numbers as integers).
fn text_of(v: Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s),
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => Some(f.to_string()),
        Value::Blob(b) => String::from_utf8(b).ok(),
        Value::Null => None,
    }
}

/// The schema version, or a clear error for what papermap cannot read.
fn check_schema(conn: &Connection, path: &Path) -> Result<String> {
    let userdata: Option<i64> = conn
        .query_row(
            "SELECT version FROM version WHERE schema = 'userdata'",
            [],
            |r| r.get(0),
        )
        .ok();
    let Some(userdata) = userdata else {
        return Err(input(
            path,
            "is an SQLite database but not a Zotero one (no userdata schema version in a `version` table)"
                .into(),
        ));
    };
    let has_names = has_column(conn, "creators", "firstName").unwrap_or(false);
    if userdata < OLDEST_USERDATA || !has_names {
        return Err(input(
            path,
            format!(
                "is a Zotero database of schema userdata {userdata}, from Zotero 4 or older; \
                 papermap reads Zotero 5, 6 and 7 databases: open it once in a current Zotero \
                 (it upgrades the database) or export BibTeX from Zotero"
            ),
        ));
    }
    for table in [
        "items",
        "itemData",
        "itemDataValues",
        "itemCreators",
        "deletedItems",
    ] {
        if !table_exists(conn, table).unwrap_or(false) {
            return Err(input(
                path,
                format!("Zotero database (schema userdata {userdata}) has no `{table}` table"),
            ));
        }
    }
    let client: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE setting = 'client' AND key = 'lastVersion'",
            [],
            |r| r.get(0),
        )
        .ok();
    Ok(match client {
        Some(v) => format!("Zotero {v}, schema userdata {userdata}"),
        None => format!("schema userdata {userdata}"),
    })
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    if !table_exists(conn, table)? {
        return Ok(false);
    }
    let mut st = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = st.query_map([], |r| r.get::<_, String>(1))?;
    for n in names {
        if n? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The first of two tables that exists (the `*Combined` views include
/// custom types and fields).
fn pick(conn: &Connection, a: &'static str, b: &'static str) -> rusqlite::Result<&'static str> {
    Ok(if table_exists(conn, a)? { a } else { b })
}

/// The first of `tables` that exists, if any.
fn pick_existing(
    conn: &Connection,
    tables: &[&'static str],
) -> rusqlite::Result<Option<&'static str>> {
    for t in tables {
        if table_exists(conn, t)? {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

fn ids_of(conn: &Connection, sql: &str) -> rusqlite::Result<HashSet<i64>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
    rows.collect()
}

/// Collections as paths ("Thesis/Chapter 2"), with the items in each.
struct Collections {
    paths: BTreeMap<i64, String>,
    children: HashMap<i64, Vec<i64>>,
    of_item: HashMap<i64, Vec<i64>>,
}

impl Collections {
    fn load(conn: &Connection) -> rusqlite::Result<Collections> {
        let mut rows: HashMap<i64, (String, Option<i64>, i64)> = HashMap::new();
        if table_exists(conn, "collections")? {
            let mut st = conn.prepare(
                "SELECT collectionID, collectionName, parentCollectionID, libraryID FROM collections",
            )?;
            let it = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for row in it {
                let (id, name, parent, lib) = row?;
                rows.insert(id, (name, parent, lib));
            }
        }
        // Collections in Zotero 7's trash are gone, with their subcollections.
        let trashed = if table_exists(conn, "deletedCollections")? {
            ids_of(conn, "SELECT collectionID FROM deletedCollections")?
        } else {
            HashSet::new()
        };
        let mut paths = BTreeMap::new();
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for (&id, (_, parent, _)) in &rows {
            if let Some(p) = parent {
                children.entry(*p).or_default().push(id);
            }
            let mut names = Vec::new();
            let mut cur = Some(id);
            let mut alive = true;
            // Bounded walk: a damaged parent chain cannot loop forever.
            while let Some(c) = cur {
                if names.len() > rows.len() {
                    alive = false;
                    break;
                }
                let Some((name, parent, _)) = rows.get(&c) else {
                    break;
                };
                if trashed.contains(&c) {
                    alive = false;
                    break;
                }
                names.push(name.replace('/', "∕"));
                cur = *parent;
            }
            if alive {
                names.reverse();
                paths.insert(id, names.join("/"));
            }
        }
        let mut of_item: HashMap<i64, Vec<i64>> = HashMap::new();
        if table_exists(conn, "collectionItems")? {
            let mut st = conn.prepare("SELECT collectionID, itemID FROM collectionItems")?;
            let it = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            for row in it {
                let (c, i) = row?;
                if paths.contains_key(&c) {
                    of_item.entry(i).or_default().push(c);
                }
            }
        }
        Ok(Collections {
            paths,
            children,
            of_item,
        })
    }

    /// The collection named by `path` (exactly, else ignoring case) and all
    /// its subcollections.
    fn subtree(&self, path: &str) -> Option<HashSet<i64>> {
        let path = path.trim().trim_matches('/');
        let roots: Vec<i64> = {
            let exact: Vec<i64> = self
                .paths
                .iter()
                .filter(|(_, p)| p.as_str() == path)
                .map(|(id, _)| *id)
                .collect();
            if exact.is_empty() {
                self.paths
                    .iter()
                    .filter(|(_, p)| p.to_lowercase() == path.to_lowercase())
                    .map(|(id, _)| *id)
                    .collect()
            } else {
                exact
            }
        };
        if roots.is_empty() {
            return None;
        }
        let mut out = HashSet::new();
        let mut stack = roots;
        while let Some(c) = stack.pop() {
            if out.insert(c)
                && let Some(kids) = self.children.get(&c)
            {
                stack.extend(kids.iter().copied().filter(|k| self.paths.contains_key(k)));
            }
        }
        Some(out)
    }
}

/// A private copy of the database and its journal, removed when dropped.
struct Snapshot {
    dir: PathBuf,
    db: PathBuf,
}

impl Snapshot {
    /// Copies `path` and its `-wal` / `-journal` files; if any of them
    /// changed while being copied (Zotero wrote), copies again.
    fn take(path: &Path) -> Result<Snapshot> {
        let dir = std::env::temp_dir().join(format!(
            "papermap-zotero-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let snap = Snapshot {
            db: dir.join("zotero.sqlite"),
            dir,
        };
        let companions = |suffix: &str| {
            let mut s = path.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        let sources = [
            (path.to_path_buf(), snap.db.clone()),
            (companions("-wal"), snap.dir.join("zotero.sqlite-wal")),
            (
                companions("-journal"),
                snap.dir.join("zotero.sqlite-journal"),
            ),
        ];
        let stamp = || -> Vec<Option<(u64, SystemTime)>> {
            sources
                .iter()
                .map(|(s, _)| {
                    std::fs::metadata(s)
                        .ok()
                        .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
                })
                .collect()
        };
        for attempt in 0..5 {
            let before = stamp();
            for (i, (src, dst)) in sources.iter().enumerate() {
                let _ = std::fs::remove_file(dst);
                if i > 0 && before[i].is_none() {
                    continue;
                }
                match std::fs::copy(src, dst) {
                    // The copy is ours to write (a hot journal is replayed
                    // into it), whatever the original's permissions.
                    Ok(_) => {
                        let mut perm = std::fs::metadata(dst)
                            .map_err(|e| Error::io(dst, e))?
                            .permissions();
                        #[allow(clippy::permissions_set_readonly_false)]
                        perm.set_readonly(false);
                        std::fs::set_permissions(dst, perm).map_err(|e| Error::io(dst, e))?;
                    }
                    // A journal that went away between stat and copy: committed.
                    Err(e) if i > 0 && e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(src, e)),
                }
            }
            if stamp() == before {
                return Ok(snap);
            }
            std::thread::sleep(Duration::from_millis(200 * (attempt + 1)));
        }
        Err(input(
            path,
            "the database kept changing while it was copied (Zotero is syncing or importing); try again in a moment".into(),
        ))
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zotero_dates_give_year_and_month() {
        assert_eq!(zotero_date("2019-12-00 12/2019"), (Some(2019), Some(12)));
        assert_eq!(zotero_date("2017-00-00 2017"), (Some(2017), None));
        assert_eq!(zotero_date("2016-06-07 2016-06-07"), (Some(2016), Some(6)));
        assert_eq!(zotero_date("0000-00-00 Spring 2019"), (Some(2019), None));
        assert_eq!(zotero_date("n.d."), (None, None));
        assert_eq!(zotero_date("0000-00-00 "), (None, None));
    }

    #[test]
    fn extra_lines_name_arxiv_ids_and_dois() {
        let mk = |extra: &str| {
            let f: HashMap<String, String> =
                [("title".into(), "T".into()), ("extra".into(), extra.into())]
                    .into_iter()
                    .collect();
            to_paper(&f, Vec::new())
        };
        assert_eq!(mk("arXiv: 1503.03900").arxiv.as_deref(), Some("1503.03900"));
        assert_eq!(
            mk("arXiv:1606.02360 [cs, math]").arxiv.as_deref(),
            Some("1606.02360")
        );
        assert_eq!(
            mk("Citation Key: x\n_eprint: 2101.00001").arxiv.as_deref(),
            Some("2101.00001")
        );
        assert_eq!(
            mk("DOI: 10.5281/ZENODO.7374521").doi.as_deref(),
            Some("10.5281/ZENODO.7374521")
        );
    }
}
