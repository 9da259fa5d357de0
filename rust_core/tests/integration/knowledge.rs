//! KnowledgeService: entries unique by (namespace, key), revisions, queries.

use crate::common;

use std::sync::Arc;

use common::{KNOWLEDGE, call, expect_code, new_runtime};
use hms_ffi::codec::Format;
use hms_ffi::proto::hms::agent::v1::{
    DeleteKnowledgeRequest, DeleteKnowledgeResponse, GetKnowledgeRequest, KnowledgeEntry,
    PutKnowledgeRequest, QueryKnowledgeRequest, QueryKnowledgeResponse,
};
use hms_ffi::runtime::Runtime;
use hms_ffi::{Code, HmsError};

type Rt = Arc<Runtime>;

fn put(rt: &Rt, entry: KnowledgeEntry) -> Result<KnowledgeEntry, HmsError> {
    call(
        rt,
        &format!("{KNOWLEDGE}/PutKnowledge"),
        &PutKnowledgeRequest { entry: Some(entry) },
    )
}

fn entry(namespace: &str, key: &str) -> KnowledgeEntry {
    KnowledgeEntry {
        namespace: namespace.into(),
        key: key.into(),
        text: format!("fact about {key}"),
        tags: vec!["fact".into()],
        confidence: 0.5,
        source: "test".into(),
        ..Default::default()
    }
}

fn get(rt: &Rt, request: GetKnowledgeRequest) -> Result<KnowledgeEntry, HmsError> {
    call(rt, &format!("{KNOWLEDGE}/GetKnowledge"), &request)
}

fn by_id(rt: &Rt, id: &str) -> Result<KnowledgeEntry, HmsError> {
    get(
        rt,
        GetKnowledgeRequest {
            id: id.into(),
            ..Default::default()
        },
    )
}

fn delete(rt: &Rt, id: &str, revision: u64) -> Result<DeleteKnowledgeResponse, HmsError> {
    call(
        rt,
        &format!("{KNOWLEDGE}/DeleteKnowledge"),
        &DeleteKnowledgeRequest {
            id: id.into(),
            revision,
        },
    )
}

fn query(rt: &Rt, request: &QueryKnowledgeRequest) -> Result<QueryKnowledgeResponse, HmsError> {
    call(rt, &format!("{KNOWLEDGE}/QueryKnowledge"), request)
}

/// Every (namespace, key) matching `request`, following page tokens.
fn query_all(rt: &Rt, request: QueryKnowledgeRequest) -> Vec<(String, String)> {
    let mut request = request;
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = query(rt, &request).unwrap();
        if request.page_size > 0 {
            assert!(page.entries.len() <= request.page_size as usize);
        }
        out.extend(page.entries.into_iter().map(|e| (e.namespace, e.key)));
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
    panic!("paging never ends");
}

#[test]
fn put_inserts_then_replaces_at_the_same_namespace_and_key() {
    let rt = new_runtime();
    let first = put(
        &rt,
        KnowledgeEntry {
            content: vec![0, 1, 0].into(),
            content_type: "application/x-bin".into(),
            text: String::new(),
            agent_id: "agent-1".into(),
            ..entry("facts", "sky")
        },
    )
    .unwrap();
    assert!(common::is_uuid(&first.id));
    assert_eq!(first.revision, 1);
    assert_eq!(first.content, vec![0, 1, 0]);
    assert_eq!(first.agent_id, "agent-1");
    assert!(first.created_at.is_some() && first.created_at == first.updated_at);
    assert_eq!(by_id(&rt, &first.id).unwrap(), first);

    let second = put(
        &rt,
        KnowledgeEntry {
            confidence: 0.9,
            ..entry("facts", "sky")
        },
    )
    .unwrap();
    assert_eq!(second.id, first.id, "same slot, same id");
    assert_eq!(second.revision, 2);
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.confidence, 0.9);
    assert!(second.content.is_empty(), "replaced, not merged");
    assert_eq!(second.text, "fact about sky");
    // Another key or namespace is another entry.
    let other_key = put(&rt, entry("facts", "sea")).unwrap();
    let other_ns = put(&rt, entry("myths", "sky")).unwrap();
    assert_ne!(other_key.id, first.id);
    assert_ne!(other_ns.id, first.id);
    assert_eq!(query_all(&rt, QueryKnowledgeRequest::default()).len(), 3);
}

#[test]
fn get_finds_entries_by_id_or_by_namespace_and_key() {
    let rt = new_runtime();
    let stored = put(&rt, entry("facts", "water")).unwrap();
    let found = get(
        &rt,
        GetKnowledgeRequest {
            namespace: "facts".into(),
            key: "water".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(found, stored);
    expect_code(by_id(&rt, "ghost"), Code::NotFound);
    let error = expect_code(
        get(
            &rt,
            GetKnowledgeRequest {
                namespace: "facts".into(),
                key: "fire".into(),
                ..Default::default()
            },
        ),
        Code::NotFound,
    );
    assert_eq!(error.details.get("key").map(String::as_str), Some("fire"));
    for request in [
        GetKnowledgeRequest::default(),
        GetKnowledgeRequest {
            namespace: "facts".into(),
            ..Default::default()
        },
        GetKnowledgeRequest {
            key: "water".into(),
            ..Default::default()
        },
    ] {
        expect_code(get(&rt, request), Code::InvalidArgument);
    }
}

#[test]
fn put_validates_the_entry() {
    let rt = new_runtime();
    let cases = vec![
        (entry("", "k"), "entry.namespace"),
        (entry("ns", ""), "entry.key"),
        (entry("n\0s", "k"), "entry.namespace"),
        (entry("ns", "k\0"), "entry.key"),
        (
            KnowledgeEntry {
                confidence: 1.5,
                ..entry("ns", "k")
            },
            "entry.confidence",
        ),
        (
            KnowledgeEntry {
                confidence: -0.1,
                ..entry("ns", "k")
            },
            "entry.confidence",
        ),
        (
            KnowledgeEntry {
                confidence: f64::NAN,
                ..entry("ns", "k")
            },
            "entry.confidence",
        ),
        (
            KnowledgeEntry {
                content: vec![1].into(),
                ..entry("ns", "k")
            },
            "entry.content",
        ),
    ];
    for (bad, field) in cases {
        let error = expect_code(put(&rt, bad), Code::InvalidArgument);
        assert_eq!(error.details.get("field").map(String::as_str), Some(field));
    }
    let none: Result<KnowledgeEntry, _> = call(
        &rt,
        &format!("{KNOWLEDGE}/PutKnowledge"),
        &PutKnowledgeRequest { entry: None },
    );
    expect_code(none, Code::InvalidArgument);
    // The bounds themselves are fine.
    for confidence in [0.0, 1.0] {
        put(
            &rt,
            KnowledgeEntry {
                confidence,
                ..entry("ns", &format!("c{confidence}"))
            },
        )
        .unwrap();
    }
    assert_eq!(query_all(&rt, QueryKnowledgeRequest::default()).len(), 2);
}

#[test]
fn a_negative_zero_confidence_is_stored_as_zero_in_every_format() {
    let rt = new_runtime();
    // -0.0 is in 0..1; the answer must not claim a sign that protobuf
    // output would then lose.
    let json = br#"{"entry": {"namespace": "ns", "key": "z", "confidence": -0.0}}"#.to_vec();
    // prost leaves -0.0 out, so the protobuf request is written by hand:
    // field 8 (confidence), fixed64, the bits of -0.0.
    let mut inner = prost::Message::encode_to_vec(&KnowledgeEntry {
        namespace: "ns".into(),
        key: "z".into(),
        ..Default::default()
    });
    inner.extend_from_slice(&[0x41, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    let mut protobuf = vec![0x0a, inner.len() as u8];
    protobuf.extend_from_slice(&inner);
    for (format, request) in [(Format::Json, json), (Format::Protobuf, protobuf)] {
        let method = format!("{KNOWLEDGE}/PutKnowledge");
        let answer = common::call_raw(&rt, &method, format, &request, b"").unwrap();
        let stored: KnowledgeEntry = common::decode(format, &answer);
        assert!(stored.confidence == 0.0 && stored.confidence.is_sign_positive());
    }
    let fetched = get(
        &rt,
        GetKnowledgeRequest {
            namespace: "ns".into(),
            key: "z".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(fetched.confidence.is_sign_positive());
}

#[test]
fn put_honours_revisions() {
    let rt = new_runtime();
    let first = put(&rt, entry("ns", "k")).unwrap();
    let second = put(
        &rt,
        KnowledgeEntry {
            revision: 1,
            ..entry("ns", "k")
        },
    )
    .unwrap();
    assert_eq!(second.revision, 2);
    let error = expect_code(
        put(
            &rt,
            KnowledgeEntry {
                revision: 1,
                text: "stale".into(),
                ..entry("ns", "k")
            },
        ),
        Code::Aborted,
    );
    assert_eq!(
        error.details.get("current_revision").map(String::as_str),
        Some("2")
    );
    assert_eq!(by_id(&rt, &first.id).unwrap(), second, "nothing changed");
    // A revision for an entry that does not exist is a conflict too.
    expect_code(
        put(
            &rt,
            KnowledgeEntry {
                revision: 3,
                ..entry("ns", "new")
            },
        ),
        Code::Aborted,
    );
    expect_code(
        get(
            &rt,
            GetKnowledgeRequest {
                namespace: "ns".into(),
                key: "new".into(),
                ..Default::default()
            },
        ),
        Code::NotFound,
    );
}

#[test]
fn put_by_id_never_moves_an_entry() {
    let rt = new_runtime();
    let stored = put(&rt, entry("ns", "k")).unwrap();
    // The same id at its own place is a normal replace.
    let replaced = put(
        &rt,
        KnowledgeEntry {
            id: stored.id.clone(),
            ..entry("ns", "k")
        },
    )
    .unwrap();
    assert_eq!(replaced.revision, 2);
    // The same id elsewhere is refused.
    expect_code(
        put(
            &rt,
            KnowledgeEntry {
                id: stored.id.clone(),
                ..entry("ns", "other")
            },
        ),
        Code::FailedPrecondition,
    );
    // An id nobody has is not found.
    expect_code(
        put(
            &rt,
            KnowledgeEntry {
                id: "ghost".into(),
                ..entry("ns", "ghost")
            },
        ),
        Code::NotFound,
    );
    assert_eq!(query_all(&rt, QueryKnowledgeRequest::default()).len(), 1);
}

#[test]
fn delete_removes_the_entry_and_frees_its_key() {
    let rt = new_runtime();
    let stored = put(&rt, entry("ns", "k")).unwrap();
    expect_code(delete(&rt, &stored.id, 7), Code::Aborted);
    assert!(by_id(&rt, &stored.id).is_ok());
    delete(&rt, &stored.id, stored.revision).unwrap();
    expect_code(by_id(&rt, &stored.id), Code::NotFound);
    expect_code(delete(&rt, &stored.id, 0), Code::NotFound);
    expect_code(delete(&rt, "", 0), Code::InvalidArgument);
    let again = put(&rt, entry("ns", "k")).unwrap();
    assert_ne!(again.id, stored.id);
    assert_eq!(again.revision, 1);
}

#[test]
fn query_filters_and_orders_by_namespace_then_key() {
    let rt = new_runtime();
    let make = |ns: &str, key: &str, tags: &[&str], confidence: f64, agent: &str| {
        put(
            &rt,
            KnowledgeEntry {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                confidence,
                agent_id: agent.into(),
                ..entry(ns, key)
            },
        )
        .unwrap();
    };
    // Inserted out of order on purpose.
    make("zoo", "zebra", &["animal"], 0.9, "a1");
    make("bio", "cell", &["science", "small"], 0.8, "a2");
    make("zoo", "ant", &["animal", "small"], 0.4, "a1");
    make("bio", "cat", &["animal"], 0.95, "");
    make("zoo", "antelope", &["animal"], 0.7, "a2");
    let keys = |request: QueryKnowledgeRequest| -> Vec<String> {
        query_all(&rt, request)
            .into_iter()
            .map(|(ns, key)| format!("{ns}/{key}"))
            .collect()
    };
    assert_eq!(
        keys(QueryKnowledgeRequest::default()),
        [
            "bio/cat",
            "bio/cell",
            "zoo/ant",
            "zoo/antelope",
            "zoo/zebra"
        ]
    );
    assert_eq!(
        keys(QueryKnowledgeRequest {
            namespace: "zoo".into(),
            ..Default::default()
        }),
        ["zoo/ant", "zoo/antelope", "zoo/zebra"]
    );
    assert_eq!(
        keys(QueryKnowledgeRequest {
            namespace: "zoo".into(),
            key_prefix: "ant".into(),
            ..Default::default()
        }),
        ["zoo/ant", "zoo/antelope"]
    );
    assert_eq!(
        keys(QueryKnowledgeRequest {
            key_prefix: "c".into(),
            ..Default::default()
        }),
        ["bio/cat", "bio/cell"]
    );
    assert_eq!(
        keys(QueryKnowledgeRequest {
            tags: vec!["animal".into(), "small".into()],
            ..Default::default()
        }),
        ["zoo/ant"],
        "all of the tags"
    );
    assert_eq!(
        keys(QueryKnowledgeRequest {
            min_confidence: 0.8,
            ..Default::default()
        }),
        ["bio/cat", "bio/cell", "zoo/zebra"],
        "at least the minimum"
    );
    assert_eq!(
        keys(QueryKnowledgeRequest {
            agent_id: "a2".into(),
            ..Default::default()
        }),
        ["bio/cell", "zoo/antelope"]
    );
    assert_eq!(
        keys(QueryKnowledgeRequest {
            namespace: "zoo".into(),
            tags: vec!["animal".into()],
            min_confidence: 0.5,
            agent_id: "a2".into(),
            ..Default::default()
        }),
        ["zoo/antelope"]
    );
    assert!(
        keys(QueryKnowledgeRequest {
            namespace: "nowhere".into(),
            ..Default::default()
        })
        .is_empty()
    );
}

#[test]
fn query_pages_through_every_entry_exactly_once() {
    let rt = new_runtime();
    let mut expected = Vec::new();
    for ns in ["a", "b", "c"] {
        for i in 0..9 {
            put(&rt, entry(ns, &format!("k{i}"))).unwrap();
            expected.push((ns.to_string(), format!("k{i}")));
        }
    }
    for page_size in [1, 2, 4, 9, 26, 27, 28] {
        let got = query_all(
            &rt,
            QueryKnowledgeRequest {
                page_size,
                ..Default::default()
            },
        );
        assert_eq!(got, expected, "page_size {page_size}");
    }
    // Pages under a filter.
    let got = query_all(
        &rt,
        QueryKnowledgeRequest {
            namespace: "b".into(),
            page_size: 2,
            ..Default::default()
        },
    );
    assert_eq!(got, expected[9..18]);
}

#[test]
fn a_bad_page_token_is_invalid_argument() {
    let rt = new_runtime();
    put(&rt, entry("ns", "k")).unwrap();
    // "YWJj" is base64 of "abc": well-formed, but not a token of this service.
    for token in ["%%%", "YWJj"] {
        expect_code(
            query(
                &rt,
                &QueryKnowledgeRequest {
                    page_token: token.into(),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
        );
    }
}

// ------------------------------------------------------------ full text

fn searched(
    rt: &Rt,
    text_query: &str,
    configure: impl FnOnce(&mut QueryKnowledgeRequest),
) -> Vec<String> {
    let mut request = QueryKnowledgeRequest {
        text_query: text_query.into(),
        ..Default::default()
    };
    configure(&mut request);
    query_all(rt, request)
        .into_iter()
        .map(|(_, key)| key)
        .collect()
}

fn with_text(namespace: &str, key: &str, text: &str) -> KnowledgeEntry {
    KnowledgeEntry {
        text: text.into(),
        ..entry(namespace, key)
    }
}

#[test]
fn text_queries_find_entries_holding_every_word_most_relevant_first() {
    let rt = new_runtime();
    put(
        &rt,
        with_text(
            "ops",
            "restart",
            "Restart the Worker pool; a worker restart is safe",
        ),
    )
    .unwrap();
    put(&rt, with_text("ops", "scale", "Scale the worker pool out")).unwrap();
    put(
        &rt,
        with_text("ops", "deploy", "Deploy with a rolling restart"),
    )
    .unwrap();
    put(&rt, with_text("docs", "café", "Das Café öffnet um 8")).unwrap();
    put(
        &rt,
        KnowledgeEntry {
            content: br#"{"note": "worker quota exceeded"}"#.to_vec().into(),
            content_type: "application/json".into(),
            text: String::new(),
            ..entry("ops", "quota")
        },
    )
    .unwrap();
    put(
        &rt,
        KnowledgeEntry {
            content: b"worker worker worker".to_vec().into(),
            content_type: "application/octet-stream".into(),
            text: String::new(),
            ..entry("ops", "binary")
        },
    )
    .unwrap();
    // Two mentions rank above one; ties fall back to namespace, key.
    assert_eq!(
        searched(&rt, "WORKER", |_| {}),
        ["restart", "quota", "scale"]
    );
    assert_eq!(searched(&rt, "worker restart", |_| {}), ["restart"]);
    assert_eq!(searched(&rt, "restart", |_| {}), ["restart", "deploy"]);
    // Keys are searched too; accents are kept, case is not.
    assert_eq!(searched(&rt, "CAFÉ", |_| {}), ["café"]);
    assert!(searched(&rt, "cafe", |_| {}).is_empty());
    // The other filters still apply.
    assert_eq!(
        searched(&rt, "restart", |r| r.key_prefix = "dep".into()),
        ["deploy"]
    );
    assert!(searched(&rt, "worker", |r| r.namespace = "docs".into()).is_empty());
    assert!(searched(&rt, "worker", |r| r.tags = vec!["none".into()]).is_empty());
    assert!(searched(&rt, "nowhere", |_| {}).is_empty());
}

#[test]
fn text_queries_follow_changes_and_page_through_every_match_once() {
    let rt = new_runtime();
    let first = put(&rt, with_text("n", "a", "alpha beta")).unwrap();
    put(&rt, with_text("n", "b", "beta")).unwrap();
    assert_eq!(searched(&rt, "alpha", |_| {}), ["a"]);
    put(
        &rt,
        KnowledgeEntry {
            revision: first.revision,
            ..with_text("n", "a", "gamma")
        },
    )
    .unwrap();
    assert!(
        searched(&rt, "alpha", |_| {}).is_empty(),
        "the old words are gone"
    );
    assert_eq!(searched(&rt, "gamma", |_| {}), ["a"]);
    let b = get(
        &rt,
        GetKnowledgeRequest {
            namespace: "n".into(),
            key: "b".into(),
            ..Default::default()
        },
    )
    .unwrap();
    delete(&rt, &b.id, 0).unwrap();
    assert!(
        searched(&rt, "beta", |_| {}).is_empty(),
        "a deleted entry is not found"
    );
    for i in 0..25 {
        put(&rt, with_text("many", &format!("k{i:02}"), "common word")).unwrap();
    }
    let mut paged = searched(&rt, "common", |r| r.page_size = 4);
    assert_eq!(paged.len(), 25);
    paged.sort();
    paged.dedup();
    assert_eq!(paged.len(), 25, "no entry twice across pages");
}

#[test]
fn text_queries_without_words_or_with_a_foreign_token_are_refused() {
    let rt = new_runtime();
    let empty = expect_code(
        query(
            &rt,
            &QueryKnowledgeRequest {
                text_query: " ,;- ".into(),
                ..Default::default()
            },
        ),
        Code::InvalidArgument,
    );
    assert!(empty.message.contains("no words"), "{}", empty.message);
    expect_code(
        query(
            &rt,
            &QueryKnowledgeRequest {
                text_query: "x".into(),
                page_token: "bm90LWEtbnVtYmVy".into(),
                ..Default::default()
            },
        ),
        Code::InvalidArgument,
    );
}

#[test]
fn the_embedded_search_index_is_rebuilt_when_a_data_dir_opens_again() {
    let dir = tempfile::tempdir().unwrap();
    let open =
        || common::runtime_with(|settings| settings.data_dir = Some(dir.path().to_path_buf()));
    let rt = open();
    put(&rt, with_text("n", "kept", "durable words")).unwrap();
    drop(rt);
    let rt = open();
    assert_eq!(searched(&rt, "durable", |_| {}), ["kept"]);
}
