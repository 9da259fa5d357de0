//! `hms.agent.v1.KnowledgeService`: entries unique by (namespace, key).

use prost::Message as _;

use super::paging::{Page, decode_token, record_weight};
use super::store::{KnowledgeScan, words};
use super::{Admit, Domain, Write, check_revision, new_id, not_found, now, required};
use crate::error::{Code, HmsError, Result};
use crate::events::EventBus;
use crate::proto::hms::agent::v1::{
    DeleteKnowledgeRequest, DeleteKnowledgeResponse, GetKnowledgeRequest, KnowledgeEntry,
    PutKnowledgeRequest, QueryKnowledgeRequest, QueryKnowledgeResponse,
};
use crate::proto::hms::events::v1::event::Payload;

/// Page tokens of queries carry (namespace, key), split by a NUL that
/// neither may contain.
fn token_key(namespace: &str, key: &str) -> String {
    format!("{namespace}\0{key}")
}

/// Whether `entry` passes the filters of a query (all but its text).
fn matches(request: &QueryKnowledgeRequest, entry: &KnowledgeEntry) -> bool {
    (request.namespace.is_empty() || entry.namespace == request.namespace)
        && entry.key.starts_with(&request.key_prefix)
        && request.tags.iter().all(|t| entry.tags.contains(t))
        && entry.confidence >= request.min_confidence
        && (request.agent_id.is_empty() || entry.agent_id == request.agent_id)
}

fn check_entry(entry: &KnowledgeEntry) -> Result<()> {
    required(&entry.namespace, "entry.namespace")?;
    required(&entry.key, "entry.key")?;
    for (field, value) in [
        ("entry.namespace", &entry.namespace),
        ("entry.key", &entry.key),
    ] {
        if value.contains('\0') {
            return Err(
                HmsError::invalid_argument(format!("`{field}` must not contain NUL"))
                    .with_detail("field", field),
            );
        }
    }
    if !(0.0..=1.0).contains(&entry.confidence) {
        return Err(HmsError::invalid_argument(format!(
            "`entry.confidence` is {}: it must be between 0 and 1",
            entry.confidence
        ))
        .with_detail("field", "entry.confidence"));
    }
    if !entry.text.is_empty() && !entry.content.is_empty() {
        return Err(HmsError::invalid_argument(
            "give either `entry.text` or `entry.content` (with `content_type`), not both",
        )
        .with_detail("field", "entry.content"));
    }
    Ok(())
}

impl Domain {
    pub fn put_knowledge(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: PutKnowledgeRequest,
    ) -> Result<KnowledgeEntry> {
        let mut draft = request.entry.unwrap_or_default();
        check_entry(&draft)?;
        // A confidence is a probability, where -0.0 means nothing more than
        // 0; storing +0.0 keeps every answer exact in every format (the
        // generated encoder would drop -0.0 as the default).
        draft.confidence += 0.0;
        // Ordered by (namespace, key), which never change: the one stripe
        // a new entry and its later changes share.
        let _order = self.order.hold(&token_key(&draft.namespace, &draft.key));
        let mut tx = self.write()?;
        let existing = tx.knowledge_at(&draft.namespace, &draft.key)?;
        if !draft.id.is_empty() && existing.as_ref().is_none_or(|e| e.id != draft.id) {
            return Err(match tx.knowledge(&draft.id)? {
                Some(other) => HmsError::new(
                    Code::FailedPrecondition,
                    format!(
                        "entry `{}` lives at namespace `{}` key `{}`: namespace and key never change",
                        draft.id, other.namespace, other.key
                    ),
                )
                .with_detail("id", &draft.id),
                None => not_found("knowledge entry", &draft.id),
            });
        }
        let stamp = now();
        let entry = match existing {
            Some(current) => {
                check_revision(
                    "knowledge entry",
                    &current.id,
                    draft.revision,
                    current.revision,
                )?;
                KnowledgeEntry {
                    id: current.id.clone(),
                    created_at: current.created_at,
                    updated_at: Some(stamp),
                    revision: current.revision + 1,
                    ..draft
                }
            }
            None => {
                if draft.revision != 0 {
                    return Err(HmsError::new(
                        Code::Aborted,
                        format!(
                            "no entry at namespace `{}` key `{}` has revision {}: it does not exist (any more)",
                            draft.namespace, draft.key, draft.revision
                        ),
                    )
                    .with_detail("expected_revision", draft.revision));
                }
                KnowledgeEntry {
                    id: new_id(),
                    created_at: Some(stamp),
                    updated_at: Some(stamp),
                    revision: 1,
                    ..draft
                }
            }
        };
        admit.admit(&entry)?;
        tx.write(Write::Knowledge(entry.clone()))?;
        tx.commit()?;
        events.publish(
            "knowledge.put",
            &entry.id,
            &entry.agent_id,
            Payload::Knowledge(entry.clone()),
        );
        Ok(entry)
    }

    pub fn get_knowledge(&self, request: GetKnowledgeRequest) -> Result<KnowledgeEntry> {
        let mut tx = self.read()?;
        if !request.id.is_empty() {
            return tx
                .knowledge(&request.id)?
                .ok_or_else(|| not_found("knowledge entry", &request.id));
        }
        if request.namespace.is_empty() || request.key.is_empty() {
            return Err(HmsError::invalid_argument(
                "give `id`, or `namespace` and `key`",
            ));
        }
        tx.knowledge_at(&request.namespace, &request.key)?
            .ok_or_else(|| {
                HmsError::not_found(format!(
                    "no knowledge entry at namespace `{}` key `{}`",
                    request.namespace, request.key
                ))
                .with_detail("namespace", &request.namespace)
                .with_detail("key", &request.key)
            })
    }

    pub fn query_knowledge(
        &self,
        request: QueryKnowledgeRequest,
    ) -> Result<QueryKnowledgeResponse> {
        if !request.text_query.is_empty() {
            return self.search_knowledge(request);
        }
        let start_after = decode_token(&request.page_token)?
            .map(|token| match token.split_once('\0') {
                Some((namespace, key)) => Ok((namespace.to_owned(), key.to_owned())),
                None => Err(HmsError::invalid_argument(
                    "page_token is not one this service returned",
                )),
            })
            .transpose()?;
        let keep = |entry: &KnowledgeEntry| matches(&request, entry);
        let scan = KnowledgeScan {
            after: start_after
                .as_ref()
                .map(|(namespace, key)| (namespace.as_str(), key.as_str())),
            namespace: &request.namespace,
            tags: &request.tags,
        };
        let mut page = Page::new(self.page_limit(request.page_size));
        self.read()?.scan_knowledge(&scan, &mut |entry| {
            !keep(entry) || page.take(entry, record_weight(entry.encoded_len()))
        })?;
        Ok(QueryKnowledgeResponse {
            next_page_token: page.next_token(|entry| token_key(&entry.namespace, &entry.key)),
            entries: page.items,
        })
    }

    /// A query with `text_query`: the matching entries, most relevant
    /// first. Its page tokens count the candidates the store gave so far.
    fn search_knowledge(&self, request: QueryKnowledgeRequest) -> Result<QueryKnowledgeResponse> {
        let words = words(&request.text_query);
        if words.is_empty() {
            return Err(HmsError::invalid_argument(
                "`text_query` holds no words: give letters or digits to search for",
            )
            .with_detail("field", "text_query"));
        }
        let skip = match decode_token(&request.page_token)? {
            None => 0,
            Some(token) => token.parse::<usize>().map_err(|_| {
                HmsError::invalid_argument("page_token is not one this search returned")
                    .with_detail("field", "page_token")
            })?,
        };
        let scan = KnowledgeScan {
            after: None,
            namespace: &request.namespace,
            tags: &request.tags,
        };
        let mut page = Page::new(self.page_limit(request.page_size));
        let (mut visited, mut consumed) = (0usize, skip);
        self.read()?
            .search_knowledge(&words, &scan, skip, &mut |entry| {
                visited += 1;
                if !matches(&request, entry) {
                    return true;
                }
                let taken = page.take(entry, record_weight(entry.encoded_len()));
                if taken {
                    consumed = skip + visited;
                }
                taken
            })?;
        Ok(QueryKnowledgeResponse {
            next_page_token: page.next_token(|_| consumed.to_string()),
            entries: page.items,
        })
    }

    pub fn delete_knowledge(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: DeleteKnowledgeRequest,
    ) -> Result<DeleteKnowledgeResponse> {
        required(&request.id, "id")?;
        let slot = self
            .read()?
            .knowledge(&request.id)?
            .map(|entry| token_key(&entry.namespace, &entry.key))
            .ok_or_else(|| not_found("knowledge entry", &request.id))?;
        let _order = self.order.hold(&slot);
        let mut tx = self.write()?;
        let entry = tx
            .knowledge(&request.id)?
            .ok_or_else(|| not_found("knowledge entry", &request.id))?;
        check_revision(
            "knowledge entry",
            &request.id,
            request.revision,
            entry.revision,
        )?;
        admit.admit(&DeleteKnowledgeResponse {})?;
        tx.write(Write::DeleteKnowledge(request.id.clone()))?;
        tx.commit()?;
        events.publish(
            "knowledge.deleted",
            &entry.id,
            &entry.agent_id,
            Payload::Knowledge(entry.clone()),
        );
        Ok(DeleteKnowledgeResponse {})
    }
}
