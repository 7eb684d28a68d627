"""SMS egress through Twilio's REST API."""

from services.egress.channels.sms.output import SendPolicy, SmsOutput
from services.egress.channels.sms.rate_limit import SenderRateLimit
from services.egress.channels.sms.twilio_client import TwilioClient

__all__ = ["SendPolicy", "SenderRateLimit", "SmsOutput", "TwilioClient"]
