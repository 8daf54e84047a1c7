// Every string of the citizen's status page, in Uzbek (Latin), Russian and English: one table per language.
"use strict";

window.OSS_STRINGS = {
  uz: {
    "title": "Arizangiz holati", "language": "Til", "tracking": "Kuzatuv raqami", "check": "Tekshirish",
    "status": "Holat", "submitted": "Topshirilgan sana", "due": "Ko'rib chiqish muddati", "history": "Tarix",
    "code": "Holat kodi (kvitansiyada va birinchi xabarda)", "too_many": "Juda ko'p noto'g'ri urinish. {minutes} daqiqadan keyin qayta urinib ko'ring.",
    "not_found": "Bu raqam va kod bilan ariza topilmadi. Ikkalasini tekshiring.", "bad_format": "Raqam JI-2026-000001 ko'rinishida bo'lishi kerak.",
    "network": "Server bilan aloqa yo'q.",
    "status.submitted": "Topshirildi", "status.accepted": "Qabul qilindi", "status.in_review": "Ko'rib chiqilmoqda",
    "status.approved": "Tasdiqlandi", "status.rejected": "Rad etildi", "status.issued": "Berildi",
    "status.returned_for_correction": "Tuzatishga qaytarildi", "status.resubmitted": "Qayta topshirildi", "status.awaiting_payment": "To'lov kutilmoqda",
    "status.withdrawn": "Bekor qilindi",
  },
  ru: {
    "title": "Статус заявления", "language": "Язык", "tracking": "Номер заявления", "check": "Проверить",
    "status": "Статус", "submitted": "Дата подачи", "due": "Срок рассмотрения", "history": "История",
    "code": "Код статуса (на квитанции и в первом сообщении)", "too_many": "Слишком много неверных попыток. Повторите через {minutes} мин.",
    "not_found": "Заявление с таким номером и кодом не найдено. Проверьте оба.", "bad_format": "Номер имеет вид JI-2026-000001.",
    "network": "Нет связи с сервером.",
    "status.submitted": "Подано", "status.accepted": "Принято", "status.in_review": "На рассмотрении",
    "status.approved": "Одобрено", "status.rejected": "Отказано", "status.issued": "Выдано",
    "status.returned_for_correction": "Возвращено на исправление", "status.resubmitted": "Подано повторно", "status.awaiting_payment": "Ожидает оплаты",
    "status.withdrawn": "Отозвано",
  },
  en: {
    "title": "Your application's status", "language": "Language", "tracking": "Tracking number", "check": "Check",
    "status": "Status", "submitted": "Submitted on", "due": "Due date", "history": "History",
    "code": "Status code (on the receipt and in the first message)", "too_many": "Too many wrong tries. Please try again in {minutes} min.",
    "not_found": "No application has this number and code. Please check both.", "bad_format": "The number looks like JI-2026-000001.",
    "network": "The server cannot be reached.",
    "status.submitted": "Submitted", "status.accepted": "Accepted", "status.in_review": "In review",
    "status.approved": "Approved", "status.rejected": "Rejected", "status.issued": "Issued",
    "status.returned_for_correction": "Returned for correction", "status.resubmitted": "Resubmitted", "status.awaiting_payment": "Awaiting payment",
    "status.withdrawn": "Withdrawn",
  },
};
