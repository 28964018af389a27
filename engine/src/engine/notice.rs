//! An issued document as an official notice (`crate::notice`): the latest issue of a document
//! the case's process declares, with its number (文号) and its date in the calendar's zone.

use super::{Engine, time};
use crate::error::{EngineError, Result};
use crate::notice::{Issue, Notice};
use crate::store::port::{ReadDocuments, ReadInstances};
use chrono::Datelike;

impl Engine {
    /// The latest issue of document `name` of instance `id`, laid out as a notice. Not found:
    /// no such instance, or its process declares no such document; a conflict: declared but
    /// not issued yet. The text is the one stored at issue (personal data as the document
    /// shows it: in full in a notice to the person, masked in a public list).
    pub async fn notice(&self, id: &str, name: &str) -> Result<Notice> {
        let store = &self.inner.store;
        let row = store
            .instance(id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
        let loaded = self.loaded_by_key(&row.process_key, row.version).await?;
        let Some(decl) = loaded.model.documents.iter().find(|d| d.name.name == name) else {
            let declared: Vec<&str> = loaded
                .model
                .documents
                .iter()
                .map(|d| d.name.name.as_str())
                .collect();
            return Err(EngineError::not_found(format!(
                "document `{name}` of instance {id}: its process {} declares {}",
                row.process_key,
                if declared.is_empty() {
                    "no documents".to_string()
                } else {
                    format!("the documents {}", declared.join(", "))
                }
            )));
        };
        let issued = store.documents(id).await?;
        let Some((ordinal, document)) = issued.iter().enumerate().rfind(|(_, d)| d.name == name)
        else {
            return Err(EngineError::conflict(format!(
                "document `{name}` ({}) has not been issued for instance {id} yet: the case \
                 has not reached a step that issues it",
                decl.label.as_deref().unwrap_or(name)
            )));
        };
        let calendar = loaded.model.calendar.as_ref().map(|c| c.name.as_str());
        let issued_at =
            time(document.created_at).with_timezone(&self.inner.due.time_zone(calendar));
        // 文号: the case (its business key, else the start of its id), the year of issue, and
        // the document's place among the case's documents (stable: documents are only added).
        let case = row
            .business_key
            .clone()
            .unwrap_or_else(|| id.chars().take(8).collect());
        let issue = Issue {
            id: document.id.clone(),
            label: document.label.clone().or_else(|| decl.label.clone()),
            name: document.name.clone(),
            number: format!("{case}〔{}〕{}号", issued_at.year(), ordinal + 1),
            date: format!(
                "{}年{}月{}日",
                issued_at.year(),
                issued_at.month(),
                issued_at.day()
            ),
            issued_at: issued_at.fixed_offset(),
        };
        Ok(Notice::read(&document.content, issue))
    }
}
