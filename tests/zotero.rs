//! Zotero databases read directly (issue 19): the real Zotero 6 fixture, and
//! Zotero 5 and 7 databases built here with the tables Zotero itself
//! creates (column for column where papermap reads them; item types,
//! fields and creator types copied from the real fixture).

use std::path::{Path, PathBuf};
use std::process::Output;

use papermap::paper::Paper;
use papermap::store::Library;
use rusqlite::{Connection, params};

mod common;
use common::{fixture, papermap_hash as papermap, stderr};

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "papermap failed: {}", stderr(o));
    stderr(o)
}

fn papers(lib: &Path) -> Vec<Paper> {
    Library::open(lib).unwrap().papers().to_vec()
}

fn paper<'a>(ps: &'a [Paper], id: &str) -> &'a Paper {
    ps.iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no paper {id}"))
}

/// The Zotero 6 fixture, copied so tests may edit it.
fn zotero6(dir: &Path) -> PathBuf {
    let db = dir.join("zotero.sqlite");
    std::fs::copy(fixture("zotero-library.sqlite"), &db).unwrap();
    let mut perm = std::fs::metadata(&db).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&db, perm).unwrap();
    db
}

#[test]
fn real_zotero6_database_every_regular_item_once_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let db = zotero6(dir.path());
    let err = ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    assert!(
        err.contains("Zotero 6.0.20, schema userdata 120: 38 regular item(s) read; not read: 20 attachment(s)/note(s)/annotation(s), 0 in the trash; 1 collection(s)"),
        "{err}"
    );
    assert!(err.contains("read 38, new 38, duplicate 0"), "{err}");

    // The oracle: what Zotero's own tables say, by SQL.
    let z = Connection::open(&db).unwrap();
    let keys: Vec<String> = z
        .prepare(
            "SELECT key FROM items JOIN itemTypes USING (itemTypeID) \
             WHERE typeName NOT IN ('attachment', 'note', 'annotation') \
             AND itemID NOT IN (SELECT itemID FROM deletedItems)",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys.len(), 38);
    let ps = papers(&lib);
    assert_eq!(ps.len(), 38);
    for k in &keys {
        paper(&ps, &format!("zotero:{k}"));
    }
    // A preprint: arXiv id from `extra` ("arXiv:1606.02360 [cs, math]") and
    // archiveID, full date, creators in order.
    let p = paper(&ps, "zotero:DGWB2C6B");
    assert_eq!(p.arxiv.as_deref(), Some("1606.02360"));
    assert_eq!((p.year, p.month), (Some(2016), Some(6)));
    assert_eq!(
        p.authors,
        // itemCreators.orderIndex 0, 1, 2.
        vec![
            "Stein Shiromoto, Humberto",
            "Feketa, Petro",
            "Dashkovskiy, Sergey"
        ]
    );
    // "arXiv: 1503.03900" (with a space) in `extra`.
    assert!(
        ps.iter().any(|p| p.arxiv.as_deref() == Some("1503.03900")),
        "{:?}",
        ps.iter().map(|p| &p.arxiv).collect::<Vec<_>>()
    );
    // "2019-12-00 12/2019": year and month; DOI and journal.
    let p = paper(&ps, "zotero:DWVTR4GB");
    assert_eq!((p.year, p.month), (Some(2019), Some(12)));
    assert_eq!(p.doi.as_deref(), Some("10.1109/tcns.2018.2885270"));
    assert!(p.venue.is_some());
    // DOI kept in `extra` for a type without a DOI field.
    assert_eq!(
        paper(&ps, "zotero:WMV4F2NQ").doi.as_deref(),
        Some("10.5281/zenodo.7374521")
    );
    // Abstracts: as many as Zotero holds for regular items.
    let abstracts: i64 = z
        .query_row(
            "SELECT count(*) FROM itemData JOIN fields USING (fieldID) \
             WHERE fieldName = 'abstractNote'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        ps.iter().filter(|p| p.has_abstract()).count() as i64,
        abstracts
    );
    // Collections: every member of "MachineLearning" records it.
    let members: i64 = z
        .query_row("SELECT count(*) FROM collectionItems", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        ps.iter()
            .filter(|p| p.collections == vec!["MachineLearning".to_string()])
            .count() as i64,
        members
    );
    assert!(ps.iter().all(|p| p.collections.len() <= 1));

    // Adding again changes nothing and reports no deletions.
    let err = ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    assert!(
        err.contains("read 38, new 0, duplicate 38, updated 0"),
        "{err}"
    );
    assert!(!err.contains("deleted in Zotero"), "{err}");
}

#[test]
fn zotero_collection_option_takes_one_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = zotero6(dir.path());
    let lib = dir.path().join("lib");
    let err = ok(&papermap(
        &lib,
        &[
            "add",
            "--no-embed",
            "--collection",
            "MachineLearning",
            db.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("read 20, new 20"), "{err}");
    assert!(err.contains("18 outside the collection"), "{err}");
    assert!(err.contains("not embedded: run `papermap embed`"), "{err}");

    let other = dir.path().join("other");
    let o = papermap(
        &other,
        &["add", "--collection", "Thesis", db.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no collection named 'Thesis' (collections: MachineLearning)"),
        "{}",
        stderr(&o)
    );
    assert!(!other.exists(), "a failed first add leaves no library");
}

#[test]
fn re_adding_picks_up_edits_and_removes_deletions_made_in_zotero() {
    let dir = tempfile::tempdir().unwrap();
    let db = zotero6(dir.path());
    let lib = dir.path().join("lib");
    ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    {
        let z = Connection::open(&db).unwrap();
        // Edit a title as Zotero does: a new value, the item pointed at it.
        z.execute(
            "INSERT INTO itemDataValues (value) VALUES ('Distributed Control, Revised')",
            [],
        )
        .unwrap();
        z.execute(
            "UPDATE itemData SET valueID = last_insert_rowid() \
             WHERE itemID = (SELECT itemID FROM items WHERE key = 'DWVTR4GB') \
             AND fieldID = (SELECT fieldID FROM fields WHERE fieldName = 'title')",
            [],
        )
        .unwrap();
        // One item to the trash, one erased.
        z.execute(
            "INSERT INTO deletedItems (itemID) SELECT itemID FROM items WHERE key = '9PWIL7JY'",
            [],
        )
        .unwrap();
        z.execute("DELETE FROM items WHERE key = 'MH97KZ75'", [])
            .unwrap();
    }
    let err = ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    assert!(
        err.contains("read 36, new 0, duplicate 35, updated 1"),
        "{err}"
    );
    assert!(err.contains("1 in the trash"), "{err}");
    assert!(
        err.contains(
            "removed 2 paper(s) deleted in Zotero (or moved to its trash) since the last add"
        ) && err.contains("zotero:9PWIL7JY \"Almost ISS property for feedback connected systems\"")
            && err.contains("zotero:MH97KZ75")
            && err.contains("The library holds 36 paper(s)"),
        "{err}"
    );
    let ps = papers(&lib);
    assert_eq!(ps.len(), 36);
    assert!(
        !ps.iter()
            .any(|p| p.id == "zotero:9PWIL7JY" || p.id == "zotero:MH97KZ75")
    );
    assert_eq!(
        paper(&ps, "zotero:DWVTR4GB").title,
        "Distributed Control, Revised"
    );
    // Gone from answers too: the id is no paper's any more.
    let list = papermap(&lib, &["list"]);
    ok(&list);
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(out.contains("zotero:DWVTR4GB"), "{out}");
    assert!(!out.contains("zotero:MH97KZ75"), "{out}");

    // Restored from Zotero's trash: back in the library, vector from cache.
    Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM deletedItems", [])
        .unwrap();
    let err = ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    assert!(err.contains("read 37, new 1, duplicate 36"), "{err}");
    assert!(err.contains("embedded 0 papers"), "{err}");
    assert!(!err.contains("removed"), "{err}");
    assert_eq!(papers(&lib).len(), 37);
}

/// Deletions in one Zotero database never remove the papers another one
/// (or a BibTeX file) brought.
#[test]
fn deletions_in_one_zotero_database_leave_other_sources_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = zotero6(dir.path());
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = zotero6(&other_dir);
    let lib = dir.path().join("lib");
    ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    let n = papers(&lib).len();
    // The second database holds the same item keys: the same papers (the
    // item key is the identity), whose source stays the first database.
    ok(&papermap(&lib, &["add", other.to_str().unwrap()]));
    assert_eq!(papers(&lib).len(), n);
    Connection::open(&other)
        .unwrap()
        .execute("DELETE FROM items WHERE key = 'MH97KZ75'", [])
        .unwrap();
    let err = ok(&papermap(&lib, &["add", other.to_str().unwrap()]));
    assert!(!err.contains("removed"), "{err}");
    assert_eq!(papers(&lib).len(), n);
    // Deleted from the database it came from: removed.
    Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM items WHERE key = 'MH97KZ75'", [])
        .unwrap();
    let err = ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    assert!(err.contains("removed 1 paper(s)"), "{err}");
    assert_eq!(papers(&lib).len(), n - 1);
}

#[test]
fn a_running_zotero_holding_the_database_is_read_from_a_copy_with_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = zotero6(dir.path());
    let z = Connection::open(&db).unwrap();
    z.pragma_update(None, "journal_mode", "WAL").unwrap();
    z.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    // A new item committed to the WAL only, the database held exclusively
    // as Zotero holds it.
    add_item(
        &z,
        1,
        "WALITEM1",
        "journalArticle",
        &[
            ("title", "Written while Zotero runs"),
            ("date", "2024-03-00 3/2024"),
        ],
        &[],
    );
    z.pragma_update(None, "locking_mode", "EXCLUSIVE").unwrap();
    z.execute_batch("BEGIN EXCLUSIVE; SELECT count(*) FROM items;")
        .unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let before = std::fs::read(&db).unwrap();

    let lib = dir.path().join("lib");
    let err = ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    assert!(err.contains("read 39, new 39"), "{err}");
    let ps = papers(&lib);
    let p = paper(&ps, "zotero:WALITEM1");
    assert_eq!((p.year, p.month), (Some(2024), Some(3)));
    // Zotero's files are untouched.
    assert_eq!(std::fs::read(&db).unwrap(), before);
    z.execute_batch("COMMIT").unwrap();
}

#[test]
fn zotero_4_database_is_refused_clearly_and_leaves_no_library() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zotero.sqlite");
    let z = Connection::open(&db).unwrap();
    z.execute_batch(
        "CREATE TABLE version (schema TEXT PRIMARY KEY, version INT NOT NULL);
         INSERT INTO version VALUES ('userdata', 77);
         CREATE TABLE items (itemID INTEGER PRIMARY KEY, itemTypeID INT NOT NULL, libraryID INT, key TEXT NOT NULL);
         CREATE TABLE creators (creatorID INTEGER PRIMARY KEY, creatorDataID INT NOT NULL);
         CREATE TABLE creatorData (creatorDataID INTEGER PRIMARY KEY, firstName TEXT, lastName TEXT);",
    )
    .unwrap();
    drop(z);
    let lib = dir.path().join("lib");
    let o = papermap(&lib, &["add", db.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is a Zotero database of schema userdata 77, from Zotero 4 or older"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"));
    assert!(!lib.exists());

    // Any other SQLite file is not taken for Zotero's.
    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let o = papermap(&lib, &["add", other.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("is an SQLite database but not a Zotero one"),
        "{}",
        stderr(&o)
    );
}

/// Schema version of each generation (`version` table, schema `userdata`).
#[derive(Clone, Copy, PartialEq)]
enum Gen {
    Zotero5,
    Zotero7,
}

/// A Zotero 5 or 7 database with the tables papermap reads, as Zotero
/// creates them; item types, fields and creator types from the real fixture.
fn build(path: &Path, generation: Gen) -> Connection {
    let z = Connection::open(path).unwrap();
    let (userdata, client) = match generation {
        Gen::Zotero5 => (95, "5.0.97"),
        Gen::Zotero7 => (125, "7.0.11"),
    };
    z.execute_batch(
        "CREATE TABLE version (schema TEXT PRIMARY KEY, version INT NOT NULL);
         CREATE TABLE settings (setting TEXT, key TEXT, value, PRIMARY KEY (setting, key));
         CREATE TABLE libraries (libraryID INTEGER PRIMARY KEY, type TEXT NOT NULL, editable INT NOT NULL, filesEditable INT NOT NULL, version INT NOT NULL DEFAULT 0, storageVersion INT NOT NULL DEFAULT 0, lastSync INT NOT NULL DEFAULT 0, archived INT NOT NULL DEFAULT 0);
         CREATE TABLE groups (groupID INTEGER PRIMARY KEY, libraryID INT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL, version INT NOT NULL);
         CREATE TABLE itemTypes (itemTypeID INTEGER PRIMARY KEY, typeName TEXT, templateItemTypeID INT, display INT DEFAULT 1);
         CREATE TABLE fields (fieldID INTEGER PRIMARY KEY, fieldName TEXT, fieldFormatID INT);
         CREATE TABLE creatorTypes (creatorTypeID INTEGER PRIMARY KEY, creatorType TEXT);
         CREATE TABLE items (itemID INTEGER PRIMARY KEY, itemTypeID INT NOT NULL, dateAdded TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, dateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, libraryID INT NOT NULL, key TEXT NOT NULL, version INT NOT NULL DEFAULT 0, synced INT NOT NULL DEFAULT 0, UNIQUE (libraryID, key));
         CREATE TABLE itemDataValues (valueID INTEGER PRIMARY KEY, value UNIQUE);
         CREATE TABLE itemData (itemID INT, fieldID INT, valueID, PRIMARY KEY (itemID, fieldID));
         CREATE TABLE creators (creatorID INTEGER PRIMARY KEY, firstName TEXT, lastName TEXT, fieldMode INT, UNIQUE (lastName, firstName, fieldMode));
         CREATE TABLE itemCreators (itemID INT NOT NULL, creatorID INT NOT NULL, creatorTypeID INT NOT NULL DEFAULT 1, orderIndex INT NOT NULL DEFAULT 0, PRIMARY KEY (itemID, creatorID, creatorTypeID, orderIndex), UNIQUE (itemID, orderIndex));
         CREATE TABLE collections (collectionID INTEGER PRIMARY KEY, collectionName TEXT NOT NULL, parentCollectionID INT DEFAULT NULL, clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, libraryID INT NOT NULL, key TEXT NOT NULL, version INT NOT NULL DEFAULT 0, synced INT NOT NULL DEFAULT 0, UNIQUE (libraryID, key));
         CREATE TABLE collectionItems (collectionID INT NOT NULL, itemID INT NOT NULL, orderIndex INT NOT NULL DEFAULT 0, PRIMARY KEY (collectionID, itemID));
         CREATE TABLE deletedItems (itemID INTEGER PRIMARY KEY, dateDeleted DEFAULT CURRENT_TIMESTAMP NOT NULL);
         CREATE TABLE itemAttachments (itemID INTEGER PRIMARY KEY, parentItemID INT, linkMode INT, contentType TEXT, charsetID INT, path TEXT, syncState INT DEFAULT 0, storageModTime INT, storageHash TEXT);
         CREATE TABLE itemNotes (itemID INTEGER PRIMARY KEY, parentItemID INT, note TEXT, title TEXT);
         CREATE TABLE baseFieldMappings (itemTypeID INT, baseFieldID INT, fieldID INT, PRIMARY KEY (itemTypeID, baseFieldID, fieldID));",
    )
    .unwrap();
    if generation == Gen::Zotero7 {
        z.execute_batch(
            "CREATE TABLE itemTypesCombined (itemTypeID INT NOT NULL, typeName TEXT NOT NULL, display INT DEFAULT 1 NOT NULL, custom INT NOT NULL, PRIMARY KEY (itemTypeID));
             CREATE TABLE fieldsCombined (fieldID INT NOT NULL, fieldName TEXT NOT NULL, label TEXT, fieldFormatID INT, custom INT NOT NULL, PRIMARY KEY (fieldID));
             CREATE TABLE baseFieldMappingsCombined (itemTypeID INT, baseFieldID INT, fieldID INT, PRIMARY KEY (itemTypeID, baseFieldID, fieldID));
             CREATE TABLE deletedCollections (collectionID INTEGER PRIMARY KEY, dateDeleted DEFAULT CURRENT_TIMESTAMP NOT NULL);
             CREATE TABLE itemAnnotations (itemID INTEGER PRIMARY KEY, parentItemID INT NOT NULL, type INTEGER NOT NULL, authorName TEXT, text TEXT, comment TEXT, color TEXT, pageLabel TEXT, sortIndex TEXT NOT NULL, position TEXT NOT NULL, isExternal INT NOT NULL);",
        )
        .unwrap();
    }
    z.execute(
        "ATTACH DATABASE ?1 AS z6",
        [fixture("zotero-library.sqlite").to_str().unwrap()],
    )
    .unwrap();
    z.execute_batch(
        "INSERT INTO itemTypes SELECT * FROM z6.itemTypes;
         INSERT INTO fields SELECT * FROM z6.fields;
         INSERT INTO creatorTypes SELECT * FROM z6.creatorTypes;
         INSERT INTO baseFieldMappings SELECT * FROM z6.baseFieldMappings;",
    )
    .unwrap();
    if generation == Gen::Zotero7 {
        z.execute_batch(
            "INSERT INTO itemTypesCombined SELECT * FROM z6.itemTypesCombined;
             INSERT INTO baseFieldMappingsCombined SELECT * FROM z6.baseFieldMappingsCombined;
             INSERT INTO fieldsCombined SELECT * FROM z6.fieldsCombined;",
        )
        .unwrap();
    }
    z.execute_batch("DETACH DATABASE z6").unwrap();
    z.execute(
        "INSERT INTO version VALUES ('userdata', ?1)",
        params![userdata],
    )
    .unwrap();
    z.execute(
        "INSERT INTO settings VALUES ('client', 'lastVersion', ?1)",
        [client],
    )
    .unwrap();
    z.execute_batch(
        "INSERT INTO libraries (libraryID, type, editable, filesEditable) VALUES (1, 'user', 1, 1);
         INSERT INTO libraries (libraryID, type, editable, filesEditable) VALUES (2, 'group', 1, 1);
         INSERT INTO libraries (libraryID, type, editable, filesEditable) VALUES (3, 'feed', 0, 0);
         INSERT INTO groups VALUES (4242, 2, 'Lab', '', 0);",
    )
    .unwrap();
    z
}

/// Adds an item the way Zotero stores one; returns its itemID.
fn add_item(
    z: &Connection,
    library: i64,
    key: &str,
    kind: &str,
    fields: &[(&str, &str)],
    creators: &[(&str, &str, i64, &str)],
) -> i64 {
    z.execute(
        "INSERT INTO items (itemTypeID, libraryID, key) \
         SELECT itemTypeID, ?1, ?2 FROM itemTypes WHERE typeName = ?3",
        params![library, key, kind],
    )
    .unwrap();
    let item = z.last_insert_rowid();
    for (name, value) in fields {
        z.execute(
            "INSERT OR IGNORE INTO itemDataValues (value) VALUES (?1)",
            [value],
        )
        .unwrap();
        let n = z
            .execute(
                "INSERT INTO itemData (itemID, fieldID, valueID) \
                 SELECT ?1, fieldID, (SELECT valueID FROM itemDataValues WHERE value = ?3) \
                 FROM fields WHERE fieldName = ?2",
                params![item, name, value],
            )
            .unwrap();
        assert_eq!(n, 1, "field {name}");
    }
    for (order, (first, last, mode, role)) in creators.iter().enumerate() {
        z.execute(
            "INSERT OR IGNORE INTO creators (firstName, lastName, fieldMode) VALUES (?1, ?2, ?3)",
            params![first, last, mode],
        )
        .unwrap();
        z.execute(
            "INSERT INTO itemCreators (itemID, creatorID, creatorTypeID, orderIndex) \
             SELECT ?1, (SELECT creatorID FROM creators WHERE firstName = ?2 AND lastName = ?3 AND fieldMode = ?4), \
             creatorTypeID, ?5 FROM creatorTypes WHERE creatorType = ?6",
            params![item, first, last, mode, order as i64, role],
        )
        .unwrap();
    }
    item
}

fn add_collection(z: &Connection, id: i64, name: &str, parent: Option<i64>, items: &[i64]) {
    z.execute(
        "INSERT INTO collections (collectionID, collectionName, parentCollectionID, libraryID, key) \
         VALUES (?1, ?2, ?3, 1, ?4)",
        params![id, name, parent, format!("COLL{id:04}")],
    )
    .unwrap();
    for i in items {
        z.execute(
            "INSERT INTO collectionItems (collectionID, itemID) VALUES (?1, ?2)",
            params![id, i],
        )
        .unwrap();
    }
}

/// A library with what real ones hold: Chinese and Portuguese records, a
/// 200-author item, single-field names, editors, nested collections, the
/// trash, attachments and notes, a group library and a feed.
fn populate(z: &Connection, generation: Gen) {
    let zh = add_item(
        z,
        1,
        "ZHCN0001",
        "journalArticle",
        &[
            ("title", "基于深度学习的中文文本分类研究"),
            (
                "abstractNote",
                "本文提出一种基于深度学习的中文文本分类方法。",
            ),
            ("publicationTitle", "计算机学报"),
            ("date", "2020-05-00 2020年5月"),
            ("DOI", "10.11897/SP.J.1016.2020.00001"),
        ],
        &[("", "王小明", 1, "author"), ("", "李华", 1, "author")],
    );
    let pt = add_item(
        z,
        1,
        "PTBR0001",
        "thesis",
        &[
            (
                "title",
                "Aprendizado de máquina para previsão de safras no Brasil",
            ),
            (
                "abstractNote",
                "Esta dissertação avalia métodos de aprendizado de máquina.",
            ),
            ("university", "Universidade de São Paulo"),
            ("date", "2019-00-00 2019"),
        ],
        &[
            ("João", "Conceição", 0, "author"),
            ("Maria", "Araújo", 0, "contributor"),
        ],
    );
    let many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("Given{i:03}"), format!("Family{i:03}")))
        .collect();
    let many_refs: Vec<(&str, &str, i64, &str)> = many
        .iter()
        .map(|(f, l)| (f.as_str(), l.as_str(), 0, "author"))
        .collect();
    let big = add_item(
        z,
        1,
        "BIGCOLAB",
        "preprint",
        &[
            ("title", "A large collaboration measures something"),
            ("abstractNote", "Two hundred authors report a measurement."),
            ("archiveID", "arXiv:2301.01234"),
            ("repository", "arXiv"),
            ("date", "2023-01-03 2023-01-03"),
            ("url", "http://arxiv.org/abs/2301.01234v2"),
        ],
        &many_refs,
    );
    let edited = add_item(
        z,
        1,
        "EDBOOK01",
        "book",
        &[("title", "Handbook of Edited Things"), ("date", "2015")],
        &[("Ed", "Itor", 0, "editor")],
    );
    let conf = add_item(
        z,
        1,
        "CONF0001",
        "conferencePaper",
        &[
            ("title", "Fast Things at a Conference"),
            ("proceedingsTitle", "Proceedings of the Conference"),
            ("extra", "_eprint: 1911.00001"),
            ("DOI", "10.48550/arXiv.1911.00001"),
        ],
        &[("A.", "Author", 0, "author")],
    );
    // A legal case: its title is `caseName`, its date `dateDecided`.
    add_item(
        z,
        1,
        "CASE0001",
        "case",
        &[
            ("caseName", "Authors Guild v. Google"),
            ("dateDecided", "2015-10-16 2015-10-16"),
            (
                "abstractNote",
                "Scanning books to build a search index is fair use.",
            ),
        ],
        &[],
    );
    let trashed = add_item(
        z,
        1,
        "TRASHED1",
        "journalArticle",
        &[("title", "In the trash")],
        &[],
    );
    z.execute("INSERT INTO deletedItems (itemID) VALUES (?1)", [trashed])
        .unwrap();
    let att = add_item(
        z,
        1,
        "ATTACH01",
        "attachment",
        &[("title", "Full Text PDF")],
        &[],
    );
    z.execute(
        "INSERT INTO itemAttachments (itemID, parentItemID, linkMode, contentType) VALUES (?1, ?2, 1, 'application/pdf')",
        params![att, zh],
    )
    .unwrap();
    let note = add_item(z, 1, "NOTE0001", "note", &[], &[]);
    z.execute(
        "INSERT INTO itemNotes (itemID, parentItemID, note, title) VALUES (?1, ?2, '<p>read</p>', 'read')",
        params![note, zh],
    )
    .unwrap();
    add_item(
        z,
        2,
        "GROUP001",
        "journalArticle",
        &[("title", "A paper in a group library")],
        &[],
    );
    add_item(
        z,
        3,
        "FEED0001",
        "journalArticle",
        &[("title", "A feed item")],
        &[],
    );
    add_collection(z, 1, "Thesis", None, &[zh]);
    add_collection(z, 2, "Chapter 2", Some(1), &[pt, big]);
    add_collection(z, 3, "Drafts", Some(2), &[conf]);
    add_collection(z, 4, "Reading", None, &[big, edited]);
    if generation == Gen::Zotero7 {
        let ann = add_item(z, 1, "ANNOT001", "annotation", &[], &[]);
        z.execute(
            "INSERT INTO itemAnnotations (itemID, parentItemID, type, text, sortIndex, position, isExternal) \
             VALUES (?1, ?2, 1, 'highlighted', '0', '{}', 0)",
            params![ann, att],
        )
        .unwrap();
        // A collection in Zotero 7's trash is no path any more.
        add_collection(z, 5, "Old", None, &[edited]);
        z.execute(
            "INSERT INTO deletedCollections (collectionID) VALUES (5)",
            [],
        )
        .unwrap();
    }
}

fn check_generation(generation: Gen) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zotero.sqlite");
    let z = build(&db, generation);
    populate(&z, generation);
    drop(z);
    let lib = dir.path().join("lib");
    let err = ok(&papermap(&lib, &["add", db.to_str().unwrap()]));
    let (schema, not_papers, collections) = match generation {
        Gen::Zotero5 => ("Zotero 5.0.97, schema userdata 95", 2, 4),
        Gen::Zotero7 => ("Zotero 7.0.11, schema userdata 125", 3, 4),
    };
    assert!(
        err.contains(&format!(
            "{schema}: 7 regular item(s) read; not read: {not_papers} attachment(s)/note(s)/annotation(s), 1 in the trash, 1 feed item(s); {collections} collection(s)"
        )),
        "{err}"
    );
    assert!(err.contains("read 7, new 7, duplicate 0"), "{err}");
    let ps = papers(&lib);
    let mut ids: Vec<&str> = ps.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![
            "zotero:BIGCOLAB",
            "zotero:CASE0001",
            "zotero:CONF0001",
            "zotero:EDBOOK01",
            "zotero:L2:GROUP001",
            "zotero:PTBR0001",
            "zotero:ZHCN0001"
        ]
    );
    let case = paper(&ps, "zotero:CASE0001");
    assert_eq!(case.title, "Authors Guild v. Google");
    assert_eq!((case.year, case.month), (Some(2015), Some(10)));
    let zh = paper(&ps, "zotero:ZHCN0001");
    assert_eq!(zh.title, "基于深度学习的中文文本分类研究");
    assert_eq!(zh.authors, vec!["王小明", "李华"]);
    assert_eq!((zh.year, zh.month), (Some(2020), Some(5)));
    assert_eq!(zh.venue.as_deref(), Some("计算机学报"));
    assert_eq!(zh.collections, vec!["Thesis"]);
    let pt = paper(&ps, "zotero:PTBR0001");
    assert_eq!(
        pt.title,
        "Aprendizado de máquina para previsão de safras no Brasil"
    );
    assert_eq!(
        pt.authors,
        vec!["Conceição, João"],
        "contributors are not authors"
    );
    assert_eq!(pt.venue.as_deref(), Some("Universidade de São Paulo"));
    assert_eq!((pt.year, pt.month), (Some(2019), None));
    assert_eq!(pt.collections, vec!["Thesis/Chapter 2"]);
    let big = paper(&ps, "zotero:BIGCOLAB");
    assert_eq!(big.authors.len(), 200);
    assert_eq!(big.authors[0], "Family000, Given000");
    assert_eq!(big.authors[199], "Family199, Given199");
    assert_eq!(big.arxiv.as_deref(), Some("2301.01234"));
    assert_eq!(big.collections, vec!["Reading", "Thesis/Chapter 2"]);
    let ed = paper(&ps, "zotero:EDBOOK01");
    assert_eq!(
        ed.authors,
        vec!["Itor, Ed"],
        "an edited book keeps its editors"
    );
    assert_eq!(
        ed.collections,
        vec!["Reading"],
        "a trashed collection is no path"
    );
    let conf = paper(&ps, "zotero:CONF0001");
    assert_eq!(conf.arxiv.as_deref(), Some("1911.00001"));
    assert_eq!(conf.venue.as_deref(), Some("Proceedings of the Conference"));
    assert_eq!(conf.collections, vec!["Thesis/Chapter 2/Drafts"]);

    // A collection with its subcollections.
    let sub = dir.path().join("sub");
    let err = ok(&papermap(
        &sub,
        &[
            "add",
            "--collection",
            "Thesis/Chapter 2",
            db.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("read 3, new 3"), "{err}");
    let mut ids: Vec<String> = papers(&sub).into_iter().map(|p| p.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["zotero:BIGCOLAB", "zotero:CONF0001", "zotero:PTBR0001"]
    );
}

#[test]
fn zotero_5_database() {
    check_generation(Gen::Zotero5);
}

#[test]
fn zotero_7_database() {
    check_generation(Gen::Zotero7);
}
